"""The error hierarchy of pygase.

Two families, because they call for different reactions:

* :class:`UsageError` and its children mean the local program asked for something pygase cannot do
  (an unsupported value in a state, an oversized event, connecting a client twice). They are raised
  at the call that caused them, so the traceback points at the caller's line.
* :class:`ProtocolError` means a remote peer sent something malformed or unexpected. These never
  reach user code from the network layer: the datagram is dropped and counted instead.

:class:`ConnectionFailed` covers a connection that could not be made or was lost.
"""

from __future__ import annotations


class PygaseError(Exception):
    """Base class of every error pygase raises on purpose."""


class UsageError(PygaseError):
    """The local program used pygase in a way it does not support."""


class UnsupportedValueError(UsageError, TypeError):
    """A value cannot travel in a game state or an event (it is also a ``TypeError``)."""


class PayloadTooLargeError(UsageError, ValueError):
    """A state, delta or event is larger than the configured maximum payload size."""


class NotConnectedError(UsageError):
    """An operation needs a live connection, and there is none."""


class EventQueueFullError(UsageError):
    """Too many events are unsettled (neither acknowledged nor given up) to queue another.

    Raised by ``dispatch_event`` instead of dropping the event, typically while a connection is
    reconnecting and its events wait for the link to return; see ``max_pending_events``.
    """


class ShutdownRefusedError(UsageError):
    """A client that is not the host asked the server to shut down; the server keeps running."""


class ProtocolError(PygaseError):
    """A datagram from a remote peer is malformed, truncated or unexpected."""


class ConnectionFailed(PygaseError):
    """A connection could not be established, or was lost."""


class ServerFullError(ConnectionFailed):
    """The server refused the connection because it has reached its maximum number of clients."""


class VersionMismatchError(ConnectionFailed):
    """The server speaks another version of the pygase protocol."""


class TokenRejectedError(ConnectionFailed):
    """The server needs a connect token, or refused the one presented (invalid, expired, used)."""


class ConnectTimeoutError(ConnectionFailed, TimeoutError):
    """The server did not answer the handshake in time."""


class JoinRefusedError(ConnectionFailed):
    """A room refused a client (raised by ``Room.on_auth``, and at ``Client.connect``).

    ``reason`` is the room's reason, as given to the constructor.
    """

    def __init__(self, reason: str = "refused") -> None:
        super().__init__(reason)
        self.reason = reason


class AddressResolutionError(ConnectionFailed):
    """The host name does not resolve to an address."""


class ServerUnreachableError(ConnectionFailed):
    """Nothing listens at the server's address (the OS reported the port unreachable)."""


class MatchmakerError(ConnectionFailed):
    """The matchmaker could not seat the client: it is unreachable, or answered an error.

    ``status`` is the HTTP status (0 when no answer came); a refusal of the authentication
    hook or a room's is a :class:`JoinRefusedError` instead.
    """

    def __init__(self, reason: str, status: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
