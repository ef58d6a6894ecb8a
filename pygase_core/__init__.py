"""pygase: real-time networking for Python games.

An authoritative :class:`Server` serves a :class:`GameStateStore` that a
:class:`GameStateMachine` advances; every :class:`Client` sees the same :class:`GameState`, a
few milliseconds behind, and exchanges events with the server. :class:`Backend` wires the server
side together in one call.

The package has four layers: :mod:`pygase_core.model` (game state, store, state machine),
:mod:`pygase_core.protocol` (the sans-IO protocol), :mod:`pygase_core.edge` (the asyncio driver,
Server, Client, Backend) and :mod:`pygase_core.tools` (command line, demo, bots). The names below
are imported on first use, so that importing the sans-IO layer alone never pulls in asyncio.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

__version__ = "0.4.0.dev0"

_EXPORTS = {
    "TO_DELETE": "pygase_core.model.gamestate",
    "GameState": "pygase_core.model.gamestate",
    "GameStateUpdate": "pygase_core.model.gamestate",
    "GameStatus": "pygase_core.model.gamestate",
    "GameStateStore": "pygase_core.model.store",
    "GridView": "pygase_core.model.views",
    "FilterView": "pygase_core.model.views",
    "PrivateField": "pygase_core.model.views",
    "GameStateMachine": "pygase_core.model.statemachine",
    "Prediction": "pygase_core.model.prediction",
    "PredictionStats": "pygase_core.model.prediction",
    "StateHistory": "pygase_core.model.history",
    "HistoricalState": "pygase_core.model.history",
    "InputStats": "pygase_core.protocol.inputs",
    "Event": "pygase_core.model.events",
    "ConnectionStats": "pygase_core.protocol.acks",
    "Server": "pygase_core.edge.server",
    "Client": "pygase_core.edge.client",
    "ClientStatus": "pygase_core.edge.client",
    "Backend": "pygase_core.edge.backend",
    "Room": "pygase_core.rooms.room",
    "RoomClient": "pygase_core.rooms.room",
    "RoomListing": "pygase_core.rooms.matchmaker",
    "get_plugin_manager": "pygase_core.plugins",
    "hookimpl": "pygase_core.plugins",
}
_ERRORS = (
    "JoinRefusedError",
    "MatchmakerError",
    "AddressResolutionError",
    "ServerUnreachableError",
    "ShutdownRefusedError",
    "ConnectTimeoutError",
    "ConnectionFailed",
    "EventQueueFullError",
    "NotConnectedError",
    "PayloadTooLargeError",
    "ProtocolError",
    "PygaseError",
    "ServerFullError",
    "TokenRejectedError",
    "UnsupportedValueError",
    "UsageError",
    "VersionMismatchError",
)
_EXPORTS.update(dict.fromkeys(_ERRORS, "pygase_core.errors"))

# Module paths of pygase 0.4.0.dev0, before the layers became sub-packages; programs that import
# them keep working.
_MOVED = {
    "acks": "protocol.acks",
    "packets": "protocol.packets",
    "reliable": "protocol.reliable",
    "statesync": "protocol.statesync",
    "connection": "protocol.connection",
    "endpoint": "protocol.endpoint",
    "crypto": "protocol.crypto",
    "linksim": "protocol.linksim",
    "codec": "model.codec",
    "gamestate": "model.gamestate",
    "store": "model.store",
    "statemachine": "model.statemachine",
    "interpolation": "model.interpolation",
    "events": "model.events",
    "aio": "edge.driver",
    "server": "edge.server",
    "client": "edge.client",
    "backend": "edge.backend",
    "frames": "edge.frames",
    "bots": "tools.bots",
    "demo": "tools.demo",
    "cli": "tools.cli",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serve ``pygase_core.<old name>`` as the module at its new path (the same object)."""

    def __init__(self) -> None:
        self._specs: dict[str, Any] = {}

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        prefix, _, name = fullname.rpartition(".")
        if prefix != __name__ or name not in _MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: Any) -> ModuleType:
        module = importlib.import_module(f"{__name__}.{_MOVED[spec.name.rpartition('.')[2]]}")
        self._specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """The module ran at its new path already: give it back its own spec."""
        module.__spec__ = self._specs.pop(module.__name__, module.__spec__)


if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        if name in _MOVED:
            return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:
    from pygase_core.edge.backend import Backend
    from pygase_core.edge.client import Client, ClientStatus
    from pygase_core.edge.server import Server
    from pygase_core.errors import (
        AddressResolutionError,
        ConnectionFailed,
        ConnectTimeoutError,
        EventQueueFullError,
        JoinRefusedError,
        NotConnectedError,
        PayloadTooLargeError,
        ProtocolError,
        PygaseError,
        ServerFullError,
        ServerUnreachableError,
        ShutdownRefusedError,
        TokenRejectedError,
        UnsupportedValueError,
        UsageError,
        VersionMismatchError,
    )
    from pygase_core.model.events import Event
    from pygase_core.model.gamestate import TO_DELETE, GameState, GameStateUpdate, GameStatus
    from pygase_core.model.history import HistoricalState, StateHistory
    from pygase_core.model.prediction import Prediction, PredictionStats
    from pygase_core.model.statemachine import GameStateMachine
    from pygase_core.model.store import GameStateStore
    from pygase_core.model.views import FilterView, GridView, PrivateField
    from pygase_core.plugins import get_plugin_manager, hookimpl
    from pygase_core.protocol.acks import ConnectionStats
    from pygase_core.protocol.inputs import InputStats
    from pygase_core.rooms.matchmaker import RoomListing
    from pygase_core.rooms.room import Room, RoomClient

__all__ = [
    "TO_DELETE",
    "AddressResolutionError",
    "Backend",
    "Client",
    "ClientStatus",
    "ConnectTimeoutError",
    "ConnectionFailed",
    "ConnectionStats",
    "Event",
    "EventQueueFullError",
    "FilterView",
    "GameState",
    "GameStateMachine",
    "GameStateStore",
    "GameStateUpdate",
    "GameStatus",
    "GridView",
    "HistoricalState",
    "InputStats",
    "JoinRefusedError",
    "NotConnectedError",
    "PayloadTooLargeError",
    "Prediction",
    "PredictionStats",
    "PrivateField",
    "ProtocolError",
    "PygaseError",
    "Room",
    "RoomClient",
    "RoomListing",
    "Server",
    "ServerFullError",
    "ServerUnreachableError",
    "ShutdownRefusedError",
    "StateHistory",
    "TokenRejectedError",
    "UnsupportedValueError",
    "UsageError",
    "VersionMismatchError",
    "__version__",
    "get_plugin_manager",
    "hookimpl",
]
