"""Twisted's TCP connections with eager writes (chatproject/eager_writes.py), on a real
socket pair: a write with nothing waiting is sent at once; what the socket does not take,
and every write after it, waits in Twisted's buffer and goes out in order."""

import socket

from twisted.internet import protocol, tcp

from chatproject import eager_writes


class Reactor:
    """What a connection asks of its reactor when it writes: to watch its socket or not."""

    def __init__(self) -> None:
        self.writers: set[object] = set()

    def addWriter(self, writer: object) -> None:
        self.writers.add(writer)

    def removeWriter(self, writer: object) -> None:
        self.writers.discard(writer)


def connection() -> tuple[tcp.Connection, socket.socket, Reactor]:
    eager_writes.install()
    ours, theirs = socket.socketpair()
    for sock in (ours, theirs):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ours.setblocking(False)
    reactor = Reactor()
    conn = tcp.Connection(ours, protocol.Protocol(), reactor)
    conn.connected = True
    return conn, theirs, reactor


def receive(sock: socket.socket, size: int) -> bytes:
    sock.settimeout(5)
    got = b""
    while len(got) < size:
        got += sock.recv(65536)
    return got


def test_a_write_with_nothing_waiting_is_sent_at_once() -> None:
    conn, theirs, reactor = connection()
    conn.write(b"data: one\n\n")
    conn.writeSequence([b"5\r\n", b"two\n\n", b"\r\n"])
    assert not reactor.writers and not conn._tempDataBuffer  # nothing left for the reactor
    expected = b"data: one\n\n5\r\ntwo\n\n\r\n"
    assert receive(theirs, len(expected)) == expected


def test_what_the_socket_does_not_take_waits_and_keeps_its_order() -> None:
    conn, theirs, reactor = connection()
    big = bytes(range(256)) * 8192  # 2 MiB: far more than the socket takes at once
    conn.write(big)
    assert reactor.writers == {conn}  # the rest waits for the socket
    conn.write(b"after")  # something is waiting: this waits behind it
    conn.writeSequence([b"and ", b"last"])
    got = b""
    theirs.settimeout(5)
    while reactor.writers:
        got += theirs.recv(65536)
        assert conn.doWrite() is None
    expected = big + b"afterand last"
    got += receive(theirs, len(expected) - len(got)) if len(got) < len(expected) else b""
    assert got == expected
    conn.write(b"idle again")  # drained: eager again
    assert not reactor.writers and receive(theirs, 10) == b"idle again"


def test_a_closed_peer_is_left_to_twisted() -> None:
    conn, theirs, reactor = connection()
    theirs.close()
    conn.write(b"x" * 100_000)  # the send fails (or is partial): Twisted's buffer takes it
    assert reactor.writers == {conn}
    assert conn.doWrite() is not None  # Twisted meets the error and reports the loss
