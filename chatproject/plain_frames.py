"""WebSocket frames without their debug log's colours.

autobahn (daphne's WebSocket library) builds the arguments of a debug log call for every
frame it sends, whether or not debug logging is on: `hltype(self.sendData)` and
`hlval(...)`, which look up a qualified name and colour it, and the length, with `click`.
The message is then dropped, but the arguments cost about 3.4 µs of worker CPU per message
sent here, most of what autobahn spends on a small frame (`sendMessage` 5.2 -> 1.8 µs,
measured on an open protocol). `install()` has autobahn's WebSocket protocol module use
helpers that return their argument as it is: a debug log, when turned on, shows the same
values without colour. Nothing else changes.
"""

from typing import Any

from autobahn.websocket import protocol

_installed = False


def _plain(value: Any, *args: Any, **kwargs: Any) -> Any:
    return value


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    protocol.hltype = _plain  # type: ignore[attr-defined]
    protocol.hlval = _plain  # type: ignore[attr-defined]
