"""gunicorn configuration for the serving API (``gunicorn -c python:reelhouse.ops.gunicorn_conf``).

Request bodies: gunicorn 23 reads a body 1 KiB at a time (``Body.read`` asks its reader for 1024
bytes per loop, and the socket is read 8 KiB per ``recv``), re-buffering each piece. For uploads
that is most of the server's CPU: a 10 MiB chunk took ~39 ms just to receive on this project's
2-core machine. The small patches below keep gunicorn's semantics (same buffers, same
``Content-Length`` accounting) and only read in large blocks, copying each byte once on its way
from the socket to the app (``LengthReader.read`` copied each block three times: into a BytesIO,
out of it, and into a slice). They are checked against the pinned gunicorn version, and every
upload test runs through them.

``readinto`` (``Body`` and ``LengthReader`` have none in gunicorn): a body's bytes go from the socket
straight into a buffer the app reuses (``recv_into``), so an upload allocates nothing per block. On
this project's VM every fresh allocation may fault in host memory: 50 uploads of 1 MiB PATCHes took
~25 page faults per PATCH with reused buffers and ~125 with a new bytes object per recv.

Closing a connection with request bytes still unread: ``post_request`` below (a gunicorn hook)
closes gracefully, see ``serving_api.unread_body``.
"""
from __future__ import annotations

import io
import socket
import time

import gunicorn
from gunicorn.http import body as _body
from gunicorn.http import unreader as _unreader

from serving_api.unread_body import LINGERING_CLOSE

RECV_BYTES = 256 * 1024
PATCHED_FOR = "23.0.0"
# A lingering close, as nginx and Apache do it: after the answer, keep reading (and discarding)
# what the client still sends, until it closes its side, pauses this long, or the whole linger
# has lasted this long. Shorter than nginx's 5 s / 30 s: a lingering connection holds one of the
# worker's threads. A client still sending after LINGER_MAX_S is cut off with a reset.
LINGER_QUIET_S = 2.0
LINGER_MAX_S = 10.0


def _read_in_large_blocks(self, size=None):
    size = self.getsize(size)
    if size == 0:
        return b""
    buffered = self.buf.getvalue()
    pieces = [buffered] if buffered else []
    have = len(buffered)
    while have < size:
        data = self.reader.read(size - have)
        if not data:
            break
        pieces.append(data)
        have += len(data)
    data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    self.buf = io.BytesIO()
    if len(data) > size:
        self.buf.write(data[size:])
        return data[:size]
    return data


def _read_length_without_copies(self, size):
    """``LengthReader.read``: the same checks and accounting, one join instead of three copies."""
    if not isinstance(size, int):
        raise TypeError("size must be an integral type")
    size = min(self.length, size)
    if size < 0:
        raise ValueError("Size must be positive.")
    if size == 0:
        return b""
    pieces, have = [], 0
    while have < size:
        data = self.unreader.read()
        if not data:
            break
        pieces.append(data)
        have += len(data)
    if have > size:  # the last piece ran past this read: give its end back
        last, keep = pieces[-1], len(pieces[-1]) - (have - size)
        self.unreader.unread(last[keep:])
        pieces[-1] = last[:keep]
    self.length -= size
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def _body_readinto(self, buffer) -> int:
    """``Body.readinto``: what a ``read`` left over first, then the reader's ``readinto``."""
    view = memoryview(buffer).cast("B")
    if not len(view):
        return 0
    if self.buf.tell():
        return _take_buffered(self, view)
    readinto = getattr(self.reader, "readinto", None)
    if readinto is None:  # a chunked or EOF-delimited body: gunicorn's own reads
        data = self.read(len(view))
        view[:len(data)] = data
        return len(data)
    return readinto(view)


def _take_buffered(holder, view: memoryview) -> int:
    """Move the start of ``holder.buf`` (a BytesIO written up to its end) into ``view``; keep the rest."""
    data = holder.buf.getvalue()
    count = min(len(data), len(view))
    view[:count] = data[:count]
    holder.buf = io.BytesIO()
    holder.buf.write(data[count:])
    return count


def _length_readinto(self, view: memoryview) -> int:
    """``LengthReader.readinto``: at most the body's remaining length; what the unreader holds (read
    past the head) first, else one ``recv_into``. 0 at the end of the body or when the client left."""
    view = view[:min(self.length, len(view))]
    if not len(view):
        return 0
    unreader = self.unreader
    unreader.buf.seek(0, io.SEEK_END)
    if unreader.buf.tell():
        count = _take_buffered(unreader, view)
    elif isinstance(unreader, _unreader.SocketUnreader):
        count = unreader.sock.recv_into(view)
    else:
        data = unreader.read()
        count = min(len(data), len(view))
        view[:count] = data[:count]
        unreader.unread(data[count:])
    self.length -= count
    return count


_original_unreader_init = _unreader.SocketUnreader.__init__
_original_length_read = _body.LengthReader.read  # kept for tests/unit/test_gunicorn_body_reads.py


def _unreader_init(self, sock, max_chunk=RECV_BYTES):
    _original_unreader_init(self, sock, max(max_chunk, RECV_BYTES))


if gunicorn.__version__ == PATCHED_FOR:
    _body.Body.read = _read_in_large_blocks
    _body.LengthReader.read = _read_length_without_copies
    _body.Body.readinto = _body_readinto
    _body.LengthReader.readinto = _length_readinto
    _unreader.SocketUnreader.__init__ = _unreader_init
else:  # say so rather than silently run ~2x slower uploads (bench/README.md, "Results: uploads")
    import logging

    logging.getLogger("gunicorn.error").warning(
        "gunicorn %s is not %s: request bodies are read gunicorn's way (1 KiB loops); "
        "re-measure bench/upload_throughput and update reelhouse/ops/gunicorn_conf.py",
        gunicorn.__version__, PATCHED_FOR)


def post_request(worker, req, environ, resp):
    """gunicorn calls this after writing an answer, before it closes or keeps the connection."""
    if environ.get(LINGERING_CLOSE) and resp is not None and resp.should_close():
        _lingering_close(environ["gunicorn.socket"])


def _lingering_close(sock: socket.socket) -> None:
    """Closing with unread bytes in the receive buffer would reset the connection and destroy the
    answer on its way to the client; after this the receive buffer is empty when gunicorn closes."""
    try:
        sock.shutdown(socket.SHUT_WR)  # the answer is complete: the client sees its end
        deadline = time.monotonic() + LINGER_MAX_S
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(min(left, LINGER_QUIET_S))
            if not sock.recv(RECV_BYTES):
                return  # the client closed its side: nothing is left to reset
    except OSError:  # timed out, or the client reset: gunicorn closes it now either way
        return
