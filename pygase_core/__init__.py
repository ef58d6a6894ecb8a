"""pygase: real-time networking for Python games.

An authoritative :class:`Server` serves a :class:`GameStateStore` that a
:class:`GameStateMachine` advances; every :class:`Client` sees the same :class:`GameState`, a
few milliseconds behind, and exchanges events with the server. :class:`Backend` wires the server
side together in one call.
"""

from .acks import ConnectionStats
from .backend import Backend
from .client import Client, ClientStatus
from .errors import (
    ConnectionFailed,
    ConnectTimeoutError,
    NotConnectedError,
    PayloadTooLargeError,
    ProtocolError,
    PygaseError,
    ServerFullError,
    TokenRejectedError,
    UnsupportedValueError,
    UsageError,
    VersionMismatchError,
)
from .events import Event
from .gamestate import TO_DELETE, GameState, GameStateUpdate, GameStatus
from .plugins import get_plugin_manager, hookimpl
from .server import Server
from .statemachine import GameStateMachine
from .store import GameStateStore

__version__ = "0.4.0.dev0"

__all__ = [
    "TO_DELETE",
    "Backend",
    "Client",
    "ClientStatus",
    "ConnectTimeoutError",
    "ConnectionFailed",
    "ConnectionStats",
    "Event",
    "GameState",
    "GameStateMachine",
    "GameStateStore",
    "GameStateUpdate",
    "GameStatus",
    "NotConnectedError",
    "PayloadTooLargeError",
    "ProtocolError",
    "PygaseError",
    "Server",
    "ServerFullError",
    "TokenRejectedError",
    "UnsupportedValueError",
    "UsageError",
    "VersionMismatchError",
    "__version__",
    "get_plugin_manager",
    "hookimpl",
]
