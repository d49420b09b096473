"""UnreadBodyDrain (serving_api/unread_body.py): what is left of a body when the answer starts.

A plain WSGI app answers 403 after reading ``reads`` bytes of the body; the server's side is a
stand-in for gunicorn's response (``start_response`` bound to an object with ``force_close``).
"""
from __future__ import annotations

import io

from serving_api.unread_body import LINGERING_CLOSE, UnreadBodyDrain

BOUND = 1000


class ServerResponse:
    """What gunicorn hands the app: ``start_response`` bound to its response object."""

    def __init__(self):
        self.closing = False
        self.headers = None

    def force_close(self):
        self.closing = True

    def start_response(self, status, headers, exc_info=None):
        self.headers = headers


class Input(io.BytesIO):
    """wsgi.input counting what was read from it."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.taken = 0

    def read(self, size=-1):
        data = super().read(size)
        self.taken += len(data)
        return data


def _run(size: int, reads: int = 0, chunked: bool = False, server_start=None):
    def app(environ, start_response):
        environ["wsgi.input"].read(reads)
        start_response("403 FORBIDDEN", [("Content-Type", "application/problem+json")])
        return [b"{}"]

    body = Input(b"x" * size)
    environ = {"wsgi.input": body, "REQUEST_METHOD": "PATCH"}
    if chunked:
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    else:
        environ["CONTENT_LENGTH"] = str(size)
    server = ServerResponse()
    UnreadBodyDrain(app, BOUND)(environ, server_start or server.start_response)
    return body, environ, server


def test_a_body_left_unread_within_the_bound_is_read_before_the_answer_and_the_connection_stays():
    body, environ, server = _run(size=900, reads=100)

    assert body.taken == 900
    assert not server.closing and LINGERING_CLOSE not in environ


def test_a_body_read_by_the_app_is_not_read_again():
    body, environ, server = _run(size=5000, reads=5000)

    assert body.taken == 5000 and not server.closing


def test_past_the_bound_nothing_more_is_read_and_the_server_closes_gracefully():
    body, environ, server = _run(size=BOUND + 101, reads=100)  # 1001 bytes left: one past the bound

    assert body.taken == 100
    assert server.closing and environ[LINGERING_CLOSE] is True
    assert server.headers == [("Content-Type", "application/problem+json")]  # gunicorn writes Connection itself


def test_a_chunked_body_is_read_to_its_end_or_one_byte_past_the_bound():
    short, environ, server = _run(size=BOUND, chunked=True)
    assert short.taken == BOUND and not server.closing

    long, environ, server = _run(size=5 * BOUND, chunked=True)
    assert long.taken == BOUND + 1 and server.closing and environ[LINGERING_CLOSE]


def test_a_server_without_force_close_is_told_by_the_connection_header():
    answered = {}

    def start_response(status, headers, exc_info=None):  # werkzeug's: a plain function
        answered["headers"] = headers

    _run(size=BOUND + 1, server_start=start_response)

    assert ("Connection", "close") in answered["headers"]
