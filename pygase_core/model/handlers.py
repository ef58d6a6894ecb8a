"""Event handlers: the registry by event type, and how handlers get invoked.

Server, client and game state machine all let users register handlers by event type and call
them the same way: the event's positional and keyword data, plus whichever *extras* (such as
``game_state``, ``dt`` or ``client_address``) the handler's signature asks for. Handlers may be
plain callables or coroutine functions.

A failing handler must not take down the loop that called it, so dispatching logs the exception
with its traceback and carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

from pygase_core.model.events import Event

__all__ = [
    "EventHandlerRegistry",
    "Handler",
    "call_with_accepted_kwargs",
    "dispatch_async",
    "dispatch_sync",
]

logger = logging.getLogger("pygase")

Handler = Callable[..., Any]


class EventHandlerRegistry:
    """Handlers by event type; registering a type again replaces its handler."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, event_type: str, handler: Handler) -> None:
        """Link ``handler`` (a callable or coroutine function) to ``event_type``."""
        if not isinstance(event_type, str):
            raise TypeError(f"event_type must be a str, not {type(event_type).__name__}")
        if not callable(handler):
            raise TypeError(f"the handler for {event_type!r} is not callable")
        self._handlers[event_type] = handler

    def get(self, event_type: str) -> Handler | None:
        """The handler for ``event_type``, or None."""
        return self._handlers.get(event_type)

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._handlers

    def __len__(self) -> int:
        return len(self._handlers)


# ---------------------------------------------------------------------------------------------
# Invocation
# ---------------------------------------------------------------------------------------------


class _Accepts(NamedTuple):
    """What a callable's signature takes, as far as extras are concerned."""

    any_keyword: bool
    positional: tuple[str, ...]
    keywords: frozenset[str]


_EVERYTHING = _Accepts(True, (), frozenset())

# Inspecting a signature costs far more than the call itself and handlers run every tick, so the
# result is remembered for as long as the callable lives. Bound methods are created afresh on
# each attribute access and are cached through their function instead, separately from the
# plain functions, since binding drops the first parameter.
_plain_cache: weakref.WeakKeyDictionary[object, _Accepts] = weakref.WeakKeyDictionary()
_method_cache: weakref.WeakKeyDictionary[object, _Accepts] = weakref.WeakKeyDictionary()


def _inspect(fn: Callable[..., Any]) -> _Accepts:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        # No signature to read (some builtins): give it the data only.
        return _Accepts(False, (), frozenset())
    positional: list[str] = []
    keywords: set[str] = set()
    any_keyword = False
    for parameter in signature.parameters.values():
        kind = parameter.kind
        if kind is parameter.VAR_KEYWORD:
            any_keyword = True
        elif kind is parameter.POSITIONAL_ONLY:
            positional.append(parameter.name)
        elif kind is parameter.POSITIONAL_OR_KEYWORD:
            positional.append(parameter.name)
            keywords.add(parameter.name)
        elif kind is parameter.KEYWORD_ONLY:
            keywords.add(parameter.name)
    return _Accepts(any_keyword, tuple(positional), frozenset(keywords))


def _accepts(fn: Callable[..., Any]) -> _Accepts:
    if inspect.ismethod(fn):
        cache, key = _method_cache, fn.__func__
    else:
        cache, key = _plain_cache, fn
    try:
        return cache[key]
    except KeyError:
        pass
    except TypeError:
        # Unhashable callables cannot be cached.
        return _inspect(fn)
    accepts = _inspect(fn)
    # A callable that is not weakly referenceable is simply inspected each time.
    with contextlib.suppress(TypeError):
        cache[key] = accepts
    return accepts


def call_with_accepted_kwargs(
    fn: Callable[..., Any],
    args: tuple[Any, ...] | list[Any],
    data_kwargs: Mapping[str, Any],
    extras: Mapping[str, Any],
) -> Any:
    """Call ``fn(*args, **data_kwargs, **extras it accepts)`` and return the result.

    An extra is passed if the signature has a parameter of that name that the positional data
    has not already filled, or if it takes ``**kwargs`` (then all extras are passed). Extras win
    over data keyword arguments of the same name, so a remote peer cannot replace, say, the
    ``game_state`` a handler receives. For a coroutine function the coroutine is returned.
    """
    accepts = _accepts(fn)
    if accepts.any_keyword:
        chosen = dict(extras)
    else:
        filled = accepts.positional[: len(args)]
        chosen = {
            name: value
            for name, value in extras.items()
            if name in accepts.keywords and name not in filled
        }
    if not chosen:
        return fn(*args, **data_kwargs)
    if data_kwargs:
        clashes = chosen.keys() & data_kwargs.keys()
        if clashes:
            logger.warning("event data %s ignored: it names handler extras", sorted(clashes))
            data_kwargs = {k: v for k, v in data_kwargs.items() if k not in clashes}
        return fn(*args, **data_kwargs, **chosen)
    return fn(*args, **chosen)


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _invoke(registry: EventHandlerRegistry, event: Event, extras: Mapping[str, Any]) -> Any:
    """Look up and call the handler. Returns ``_UNHANDLED`` if there is none."""
    handler = registry.get(event.event_type)
    if handler is None:
        logger.warning("no handler registered for event type %r; dropped", event.event_type)
        return _UNHANDLED
    return call_with_accepted_kwargs(handler, event.args, event.kwargs, extras)


_UNHANDLED = object()


async def dispatch_async(
    registry: EventHandlerRegistry,
    event: Event,
    extras: Mapping[str, Any],
    *,
    on_error: Callable[[BaseException], None] | None = None,
) -> object | None:
    """Call the handler for ``event`` and await its result if need be; return the result.

    Returns None for an event type without a handler (a warning is logged) and for a handler
    that raises (the exception goes to ``on_error``, or is logged with its traceback).
    """
    try:
        result: object = _invoke(registry, event, extras)
        if result is _UNHANDLED:
            return None
        if inspect.isawaitable(result):
            result = await result
    except Exception as error:
        if on_error is not None:
            on_error(error)
        else:
            logger.exception("handler for event type %r failed", event.event_type)
        return None
    return result


_background: set[asyncio.Task[Any]] = set()


def dispatch_sync(
    registry: EventHandlerRegistry, event: Event, extras: Mapping[str, Any]
) -> object | None:
    """Call the handler for ``event`` from synchronous code; return the result.

    A coroutine result is run to completion with :func:`asyncio.run` if no event loop runs in
    this thread. If one does, it cannot be waited for here, so it is scheduled as a task on that
    loop (its failure is logged) and None is returned. Unhandled types and failing handlers
    behave as in :func:`dispatch_async`.
    """
    try:
        result: object = _invoke(registry, event, extras)
        if result is _UNHANDLED:
            return None
        if not inspect.isawaitable(result):
            return result
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            outcome: object = asyncio.run(_await(result))
            return outcome
        task = loop.create_task(_await(result))
        _background.add(task)
        task.add_done_callback(_finish_background(event.event_type))
        return None
    except Exception:
        logger.exception("handler for event type %r failed", event.event_type)
        return None


def _finish_background(event_type: str) -> Callable[[asyncio.Task[Any]], None]:
    def finish(task: asyncio.Task[Any]) -> None:
        _background.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            logger.error(
                "handler for event type %r failed",
                event_type,
                exc_info=(type(error), error, error.__traceback__),
            )

    return finish
