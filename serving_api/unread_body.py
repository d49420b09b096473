"""Answers given before the request body was read still reach the client.

The upload endpoints refuse a chunk or a PATCH (401, 403, 404, 409, 412, 413, 423) from its
headers, without reading its body. A client that sends the whole body before reading the answer
(urllib, requests: no ``Expect: 100-continue``) is then still writing when the server closes the
socket, and a socket closed with unread bytes makes TCP send a reset: the client gets
``ConnectionResetError``/``BrokenPipeError`` and the answer, already in its receive buffer, is
discarded. nginx reads the rest of the body before it closes, which is why the refusal arrived
through nginx but not on a direct connection.

``UnreadBodyDrain`` (WSGI middleware) counts what the app read of the body and, when the answer
starts, reads and discards what is left, up to ``Settings.upload_drain_max_bytes``: the connection
is then clean and stays open for the client's next request. When more is left than that, the
answer says ``Connection: close`` and the environ is marked (``LINGERING_CLOSE``) so that the
server closes gracefully after writing the answer: it shuts down its sending side and keeps
reading a short while (``reelhouse.ops.gunicorn_conf.post_request``), so that a client finishing
its body still reads the answer. A request whose body was read (every accepted chunk and PATCH)
pays one counter per read and nothing more.
"""
from __future__ import annotations

import logging
from typing import Callable, Iterable, Optional

log = logging.getLogger("reelhouse.api")

LINGERING_CLOSE = "reelhouse.lingering_close"  # environ key: the server closes this connection gracefully
REQUEST_ID = "reelhouse.request_id"  # environ key: the request's id, for this module's log line
DRAIN_BLOCK = 1024 * 1024


class CountingInput:
    """``wsgi.input`` that remembers how many body bytes the app consumed."""

    def __init__(self, stream):
        self._stream = stream
        self.consumed = 0

    def read(self, *size) -> bytes:
        data = self._stream.read(*size)
        self.consumed += len(data)
        return data

    def readinto(self, buffer) -> int:
        readinto = getattr(self._stream, "readinto", None)
        if readinto is None:  # a server whose input has none
            view = memoryview(buffer).cast("B")
            data = self._stream.read(len(view))
            view[:len(data)] = data
            count = len(data)
        else:
            count = readinto(buffer) or 0
        self.consumed += count
        return count

    def readline(self, *size) -> bytes:
        line = self._stream.readline(*size)
        self.consumed += len(line)
        return line

    def readlines(self, *hint) -> list[bytes]:
        lines = self._stream.readlines(*hint)
        self.consumed += sum(len(line) for line in lines)
        return lines

    def __iter__(self):
        return iter(self.readline, b"")

    def __getattr__(self, name):  # anything else a server's input offers (close, ...)
        return getattr(self._stream, name)


class UnreadBodyDrain:
    """WSGI middleware; the outermost layer, so that it sees the server's own ``start_response``."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        length = _content_length(environ)
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if not length and not chunked:  # GET, HEAD, DELETE...: nothing to drain, nothing to wrap
            return self.app(environ, start_response)
        body = environ["wsgi.input"] = CountingInput(environ["wsgi.input"])

        def start(status: str, headers: list, exc_info=None):
            if not self._drain(body, length):
                environ[LINGERING_CLOSE] = True
                headers = _closing(start_response, headers)
                log.info("request %s answered %s before the end of its body (over %d bytes left, or unreadable): "
                         "closing the connection", environ.get(REQUEST_ID, "-"), status.split(" ", 1)[0],
                         self.max_bytes)
            return start_response(status, headers, exc_info)

        return self.app(environ, start)

    def _drain(self, body: CountingInput, length: Optional[int]) -> bool:
        """Reads what is left of the body, up to the bound; True when nothing is left unread."""
        if length is not None:
            left = length - body.consumed
            if left > self.max_bytes:
                return False  # not worth reading: the connection closes anyway
        else:  # chunked: the size is unknown until the last chunk; a byte past the bound says "too long"
            left = self.max_bytes + 1
        try:
            while left > 0:
                block = body.read(min(DRAIN_BLOCK, left))
                if not block:
                    return True  # the end of the body, or a client that went away: nothing more to read
                left -= len(block)
        except Exception:  # a body that cannot be read further leaves the connection unusable
            log.debug("draining a request body failed", exc_info=True)
            return False
        return length is not None


def _content_length(environ: dict) -> Optional[int]:
    raw = environ.get("CONTENT_LENGTH", "")
    return int(raw) if raw.isdigit() else None


def _closing(start_response: Callable, headers: list) -> list:
    """The answer's headers for a connection that closes after it.

    gunicorn drops the hop-by-hop headers an application sets (PEP 3333 forbids them), and
    decides ``Connection: close`` itself: its response object, whose bound ``start_response``
    the server handed us, is told with ``force_close()``. Other servers (werkzeug's) honour
    the header.
    """
    server_response = getattr(start_response, "__self__", None)
    if callable(getattr(server_response, "force_close", None)):
        server_response.force_close()
        return headers
    return [*headers, ("Connection", "close")]
