"""Eager socket writes for daphne's connections.

Twisted's TCP transport never writes when asked: it buffers the bytes and asks the reactor
to watch the socket, then writes them once the event loop reports the socket writable, and
stops watching it. For a stream that is one small write per event, with nothing buffered
before it, that is two epoll changes, an extra turn of the loop and Twisted's dispatch per
token (about 30 µs of worker CPU per SSE event here: docs/benchmarks.md), where asyncio's
transports simply send. `install()` makes Twisted's TCP connections do the same: a write
that finds nothing waiting to be sent is sent at once, as far as the socket takes it; what
the socket does not take, and every write while anything is still waiting, goes Twisted's
way (buffered, in order, with its backpressure and error handling). A failed send also
goes Twisted's way, which meets the same error on its next attempt and closes the
connection as usual. TLS connections are left alone.
"""

from collections.abc import Iterable

from twisted.internet import tcp

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    buffered_write = tcp.Connection.write
    buffered_write_sequence = tcp.Connection.writeSequence

    def eager(connection: tcp.Connection, data: bytes) -> bytes:
        """Send what the socket takes now, if nothing is waiting; the rest, to buffer."""
        if (
            type(data) is bytes and data and connection.connected and not connection.disconnecting
            and not connection._writeDisconnected and not getattr(connection, "TLS", False)
            and not connection._tempDataBuffer and len(connection.dataBuffer) == connection.offset
        ):
            sent = connection.writeSomeData(data)
            if type(sent) is int and sent > 0:
                return data[sent:]
        return data

    def write(self: tcp.Connection, data: bytes) -> None:
        rest = eager(self, data)
        if rest:
            buffered_write(self, rest)

    def write_sequence(self: tcp.Connection, iovec: Iterable[bytes]) -> None:
        if self._tempDataBuffer or len(self.dataBuffer) != self.offset:
            buffered_write_sequence(self, iovec)
            return
        pieces = list(iovec)
        if all(type(piece) is bytes for piece in pieces):
            write(self, b"".join(pieces))
        else:
            buffered_write_sequence(self, pieces)  # Twisted's own error for the wrong type

    tcp.Connection.write = write  # type: ignore[method-assign,assignment]
    tcp.Connection.writeSequence = write_sequence  # type: ignore[method-assign,assignment]
