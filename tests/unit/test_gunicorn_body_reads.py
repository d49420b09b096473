"""The gunicorn patches in reelhouse/ops/gunicorn_conf.py read request bodies in large blocks and copy
less; they must hand the app exactly the bytes, and leave exactly the rest, that gunicorn's own code
does. Checked here against gunicorn's unpatched methods, on bodies cut into random pieces."""
from __future__ import annotations

import random

import pytest
from gunicorn.http import body as gunicorn_body
from gunicorn.http.unreader import IterUnreader

from reelhouse.ops import gunicorn_conf

ORIGINAL_LENGTH_READ = gunicorn_conf._original_length_read


def _pieces(data: bytes, rng: random.Random) -> list[bytes]:
    pieces, start = [], 0
    while start < len(data):
        size = rng.choice([1, 7, 1024, 8192, 65536, 300_000])
        pieces.append(data[start:start + size])
        start += size
    return pieces


def _drain(read, reader_factory, sizes):
    reader = reader_factory()
    out = []
    for size in sizes:
        out.append(read(reader, size))
    return out, reader


@pytest.mark.parametrize("seed", range(8))
def test_length_reads_give_what_gunicorn_gives(seed):
    rng = random.Random(seed)
    data = rng.randbytes(rng.randint(1, 3_000_000))
    declared = rng.randint(0, len(data))  # a Content-Length shorter than what the socket holds, at times
    pieces = _pieces(data, rng)
    sizes = [rng.choice([1, 100, 4096, 1 << 20, 5 << 20]) for _ in range(40)]

    def factory():
        return gunicorn_body.LengthReader(IterUnreader(list(pieces)), declared)

    theirs, their_reader = _drain(ORIGINAL_LENGTH_READ, factory, sizes)
    ours, our_reader = _drain(gunicorn_conf._read_length_without_copies, factory, sizes)

    assert ours == theirs
    assert b"".join(ours) == data[:declared]
    assert our_reader.length == their_reader.length
    # what stays in the connection for the next request is the same too
    assert our_reader.unreader.read() == their_reader.unreader.read()


@pytest.mark.parametrize("seed", range(8))
def test_body_reads_return_what_was_asked_until_the_body_ends(seed):
    rng = random.Random(100 + seed)
    data = rng.randbytes(rng.randint(1, 3_000_000))
    reader = gunicorn_body.Body(gunicorn_body.LengthReader(IterUnreader(_pieces(data, rng)), len(data)))

    got, at = [], 0
    for size in [rng.choice([1, 1024, 1 << 20, 3 << 20]) for _ in range(20)] + [None]:
        block = gunicorn_conf._read_in_large_blocks(reader, size)
        expected = len(data) - at if size is None else min(size, len(data) - at)
        assert len(block) == expected
        got.append(block)
        at += len(block)
    assert b"".join(got) == data


def _mixed_reads(body, rng) -> list[bytes]:
    """Reads and readintos of random sizes, as an app might mix them, until the body ends."""
    got = []
    while True:
        if rng.random() < 0.3:
            block = gunicorn_conf._read_in_large_blocks(body, rng.choice([1, 1000, 70_000]))
        else:
            buffer = bytearray(rng.choice([1, 4096, 256 * 1024, 1 << 20]))
            count = gunicorn_conf._body_readinto(body, buffer)
            block = bytes(buffer[:count])
        if not block:
            return got
        got.append(block)


@pytest.mark.parametrize("seed", range(6))
def test_readinto_from_a_socket_gives_the_body_and_leaves_the_next_request(seed):
    """What the head's read pulled past the headers comes first, then recv_into; a Content-Length
    shorter than what the client sent leaves the rest (its next request) on the connection."""
    import socket
    import threading

    from gunicorn.http.unreader import SocketUnreader

    rng = random.Random(200 + seed)
    data = rng.randbytes(rng.randint(1, 2_000_000))
    declared = rng.randint(0, len(data))
    already_read = rng.randint(0, min(len(data), 300_000))  # what gunicorn read with the head
    ours, theirs = socket.socketpair()
    sender = threading.Thread(target=lambda: (theirs.sendall(data[already_read:]), theirs.shutdown(socket.SHUT_WR)))
    sender.start()
    try:
        unreader = SocketUnreader(ours)
        unreader.unread(data[:already_read])
        body = gunicorn_body.Body(gunicorn_body.LengthReader(unreader, declared))
        got = _mixed_reads(body, rng)
        assert b"".join(got) == data[:declared]
        rest = [unreader.read()]
        while chunk := ours.recv(1 << 20):
            rest.append(chunk)
        assert b"".join(rest) == data[declared:]
    finally:
        sender.join()
        ours.close()
        theirs.close()


@pytest.mark.parametrize("seed", range(4))
def test_readinto_without_a_socket_falls_back_to_gunicorns_reads(seed):
    rng = random.Random(300 + seed)
    data = rng.randbytes(rng.randint(1, 1_000_000))
    declared = rng.randint(0, len(data))
    reader = gunicorn_body.LengthReader(IterUnreader(_pieces(data, rng)), declared)
    assert b"".join(_mixed_reads(gunicorn_body.Body(reader), rng)) == data[:declared]
    assert reader.unreader.read() + b"".join(iter(reader.unreader.read, b"")) == data[declared:]
