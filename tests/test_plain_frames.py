"""WebSocket frames without their debug log's colours (chatproject/plain_frames.py): the
frame autobahn writes is the same, and nothing is coloured for a log nobody reads."""

from collections import deque

import click
import pytest
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol

from chatproject import plain_frames

MESSAGE = '{"type":"token","token":" héllo","seq":12}'.encode()


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


def open_protocol() -> tuple[WebSocketServerProtocol, Transport]:
    protocol = WebSocketServerProtocol()
    protocol.factory = WebSocketServerFactory()
    protocol.transport = transport = Transport()
    protocol._connectionMade()
    protocol.state = protocol.STATE_OPEN
    protocol.websocket_version = 13
    protocol.send_queue = deque()
    return protocol, transport


def test_a_message_is_framed_the_same_and_nothing_is_coloured(monkeypatch) -> None:
    plain_frames.install()

    def no_colour(*args: object, **kwargs: object) -> str:
        raise AssertionError("coloured a debug log argument")

    monkeypatch.setattr(click, "style", no_colour)
    protocol, transport = open_protocol()
    protocol.sendMessage(MESSAGE)
    protocol.sendMessage(MESSAGE * 10)
    assert transport.written == [
        bytes([0x81, len(MESSAGE)]) + MESSAGE,  # FIN + text, unmasked, 7-bit length
        bytes([0x81, 126]) + (len(MESSAGE) * 10).to_bytes(2, "big") + MESSAGE * 10,
    ]


def test_without_it_autobahn_colours_every_frames_debug_arguments(monkeypatch) -> None:
    """What `install` removes (so that the test above can fail)."""
    from autobahn import util
    from autobahn.websocket import protocol as autobahn_protocol

    monkeypatch.setattr(autobahn_protocol, "hltype", util.hltype)
    monkeypatch.setattr(autobahn_protocol, "hlval", util.hlval)
    calls: list[object] = []
    monkeypatch.setattr(click, "style", lambda text, **kwargs: calls.append(text) or text)
    protocol, _ = open_protocol()
    protocol.sendMessage(MESSAGE)
    assert calls


@pytest.fixture(autouse=True)
def _fresh_protocol_module(monkeypatch):  # each test restores autobahn's helpers afterwards
    from autobahn.websocket import protocol as autobahn_protocol

    monkeypatch.setattr(autobahn_protocol, "hltype", autobahn_protocol.hltype)
    monkeypatch.setattr(autobahn_protocol, "hlval", autobahn_protocol.hlval)
