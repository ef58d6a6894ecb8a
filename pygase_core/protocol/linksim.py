"""A network link simulator: latency, jitter, loss, duplication and reordering, per direction.

A game that works on loopback can still fall apart over Wi-Fi on another continent. Switching
this on for a :class:`~pygase_core.Client` or :class:`~pygase_core.Server` (the
``link=`` option, or the ``PYGASE_LINK`` environment variable) makes every datagram that endpoint
sends or receives go through a simulated bad link, so the game can be played and tested under
realistic conditions on one machine.

The decisions are sans-IO: :class:`LinkConditioner` takes ``now`` and a seeded
:class:`random.Random`, decides the fate of each datagram (dropped, delayed, duplicated, held
back) and holds it until it is due. The asyncio edge (:mod:`pygase_core.edge.driver`) only
asks when the next datagram is due and delivers it then. With a seed, the same traffic meets the
same fate on every run.

Conditions are written as a preset name, ``key=value`` pairs, or both (later items win)::

    "average"
    "latency=0.1,jitter=0.02,loss=0.05,seed=3"
    "bad,seed=7"
    "latency=80ms,loss=1%,in.loss=5%"

Keys are ``latency``, ``jitter``, ``reorder_delay`` (seconds, or with an ``ms`` suffix), ``loss``,
``duplicate``, ``reorder`` (fractions, or with a ``%`` suffix) and ``seed``. A key without a
prefix sets both directions; ``in.`` or ``out.`` (also ``incoming.``/``outgoing.``) sets one.
"""

from __future__ import annotations

import heapq
import os
import random
from dataclasses import dataclass, field, fields, replace
from typing import Generic, TypeVar

ENVIRONMENT_VARIABLE = "PYGASE_LINK"
"""Conditions for every Client and Server created without an explicit ``link=``."""

T = TypeVar("T")


@dataclass(frozen=True)
class Direction:
    """What happens to datagrams travelling one way.

    Attributes:
        latency: seconds every datagram is delayed.
        jitter: the delay varies uniformly by up to this many seconds either way (never below
            zero). Jitter alone keeps datagrams in order, as most real paths do; reordering is
            its own setting, so the two can be tested apart.
        loss: fraction of datagrams dropped, each independently.
        duplicate: fraction of datagrams delivered twice (the copy with its own delay).
        reorder: fraction of datagrams held back by an extra ``reorder_delay`` seconds, so that
            datagrams sent after them overtake them.
        reorder_delay: how long a reordered datagram is held back beyond its normal delay.
    """

    latency: float = 0.0
    jitter: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_delay: float = 0.05

    def __post_init__(self) -> None:
        for name in ("latency", "jitter", "reorder_delay"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value < 3600.0:
                raise ValueError(f"{name} must be seconds from 0 to 3600, not {value!r}")
        for name in ("loss", "duplicate", "reorder"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a fraction from 0 to 1, not {value!r}")

    @property
    def perfect(self) -> bool:
        """Whether this direction changes nothing (datagrams pass straight through)."""
        return self.latency == self.jitter == self.loss == self.duplicate == self.reorder == 0


@dataclass(frozen=True)
class LinkConditions:
    """The simulated link of one endpoint: what its outgoing and incoming datagrams go through.

    Applied to a client, ``outgoing`` is the upload and ``incoming`` the download. A round trip
    crosses both directions, so it gains the two latencies together. ``seed`` makes the fate of
    the datagrams repeatable (None: a different pattern every run).
    """

    outgoing: Direction = field(default_factory=Direction)
    incoming: Direction = field(default_factory=Direction)
    seed: int | None = None

    @classmethod
    def symmetric(cls, seed: int | None = None, **direction: float) -> LinkConditions:
        """The same conditions both ways: ``LinkConditions.symmetric(latency=0.1, loss=0.02)``."""
        both = Direction(**direction)
        return cls(outgoing=both, incoming=both, seed=seed)

    @classmethod
    def preset(cls, name: str) -> LinkConditions:
        """One of :data:`PRESETS` by name."""
        try:
            return PRESETS[name.strip().lower()]
        except KeyError:
            known = ", ".join(sorted(PRESETS))
            raise ValueError(f"unknown link preset {name!r} (known: {known})") from None

    @classmethod
    def parse(cls, text: str) -> LinkConditions:
        """Read conditions from text such as ``"average"`` or ``"latency=0.1,loss=0.05,seed=3"``.

        Items are separated by commas and apply from left to right, so ``"bad,loss=0"`` is the
        ``bad`` preset without its loss.
        """
        conditions = cls()
        for raw in text.split(","):
            item = raw.strip()
            if not item:
                continue
            if "=" not in item:
                conditions = replace(cls.preset(item), seed=conditions.seed)
                continue
            key, _, value = (part.strip() for part in item.partition("="))
            conditions = conditions._with(key.lower(), value)
        return conditions

    def _with(self, key: str, value: str) -> LinkConditions:
        if key == "seed":
            try:
                return replace(self, seed=int(value))
            except ValueError:
                raise ValueError(f"link seed must be an integer, not {value!r}") from None
        prefix, dot, name = key.rpartition(".")
        if name not in _DIRECTION_FIELDS:
            known = ", ".join(sorted(_DIRECTION_FIELDS))
            raise ValueError(f"unknown link setting {key!r} (known: {known}, seed)")
        number = _number(name, value)
        if not dot:
            return replace(
                self,
                outgoing=replace(self.outgoing, **{name: number}),
                incoming=replace(self.incoming, **{name: number}),
            )
        if prefix in ("out", "outgoing"):
            return replace(self, outgoing=replace(self.outgoing, **{name: number}))
        if prefix in ("in", "incoming"):
            return replace(self, incoming=replace(self.incoming, **{name: number}))
        raise ValueError(f"unknown link direction {prefix!r} in {key!r} (use in. or out.)")

    @property
    def perfect(self) -> bool:
        """Whether neither direction changes anything."""
        return self.outgoing.perfect and self.incoming.perfect

    def generators(self) -> tuple[random.Random, random.Random]:
        """Fresh ``(outgoing, incoming)`` random generators, each derived from the seed.

        Separate generators keep one direction's pattern independent of the other's traffic.
        """
        if self.seed is None:
            return random.Random(), random.Random()
        return random.Random(f"{self.seed}/out"), random.Random(f"{self.seed}/in")


_DIRECTION_FIELDS = frozenset(f.name for f in fields(Direction))
_SECONDS = frozenset(("latency", "jitter", "reorder_delay"))


def _number(name: str, text: str) -> float:
    """A setting's value: seconds may end in ``ms``, fractions in ``%``."""
    scale = 1.0
    if name in _SECONDS and text.endswith("ms"):
        text, scale = text[:-2], 0.001
    elif name in _SECONDS and text.endswith("s"):
        text = text[:-1]
    elif name not in _SECONDS and text.endswith("%"):
        text, scale = text[:-1], 0.01
    try:
        return float(text) * scale
    except ValueError:
        raise ValueError(f"link setting {name} needs a number, not {text!r}") from None


PRESETS: dict[str, LinkConditions] = {
    "off": LinkConditions(),
    "good": LinkConditions.symmetric(latency=0.02, jitter=0.005, loss=0.005),
    "average": LinkConditions.symmetric(latency=0.1, jitter=0.025, loss=0.02),
    "bad": LinkConditions.symmetric(
        latency=0.25, jitter=0.08, loss=0.1, duplicate=0.02, reorder=0.05
    ),
}
"""Named conditions; each direction gets the values shown, so a round trip gains twice the
latency. ``off`` is a perfect link, for switching the environment variable off in one place."""


def resolve_link(link: LinkConditions | str | None) -> LinkConditions | None:
    """What a Client or Server's ``link=`` option means; None for a perfect link.

    ``None`` reads :data:`ENVIRONMENT_VARIABLE`, so a whole game can be tried on a bad link
    without touching its code. A malformed value raises ``ValueError`` at once, naming it.
    """
    if link is None:
        text = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
        if not text:
            return None
        try:
            link = LinkConditions.parse(text)
        except ValueError as error:
            raise ValueError(f"{ENVIRONMENT_VARIABLE}={text!r}: {error}") from None
    elif isinstance(link, str):
        link = LinkConditions.parse(link)
    elif not isinstance(link, LinkConditions):
        raise TypeError(f"link must be LinkConditions, a string or None, not {type(link).__name__}")
    return None if link.perfect else link


class LinkConditioner(Generic[T]):
    """One direction of a simulated link: decides each datagram's fate and holds it until due.

    ``item`` is whatever the caller needs back (a datagram and its address); the conditioner
    never looks inside. Items come out of :meth:`pop_due` in delivery-time order, and items due
    at the same time in the order they went in.

    ``conditions`` may be replaced at any time; datagrams already held keep their delivery
    times, as packets already on the wire would.
    """

    def __init__(self, conditions: Direction, rng: random.Random) -> None:
        self.conditions = conditions
        self._rng = rng
        self._queue: list[tuple[float, int, T]] = []
        self._counter = 0
        self._in_order_until = float("-inf")
        self.sent = 0
        self.lost = 0
        self.duplicated = 0
        self.reordered = 0
        self.delivered = 0

    def delivery_times(self, now: float) -> list[float]:
        """Decide the fate of one datagram sent at ``now``: when each copy arrives (none: lost).

        A copy that is not reordered never arrives before one sent earlier: its time is raised to
        the latest in-order time so far, which is how jitter leaves the order alone.
        """
        conditions = self.conditions
        rng = self._rng
        self.sent += 1
        if conditions.loss and rng.random() < conditions.loss:
            self.lost += 1
            return []
        copies = 1
        if conditions.duplicate and rng.random() < conditions.duplicate:
            copies = 2
            self.duplicated += 1
        times = []
        for _ in range(copies):
            delay = conditions.latency
            if conditions.jitter:
                delay = max(0.0, delay + rng.uniform(-conditions.jitter, conditions.jitter))
            if conditions.reorder and rng.random() < conditions.reorder:
                self.reordered += 1
                times.append(now + delay + conditions.reorder_delay)
                continue
            when = max(now + delay, self._in_order_until)
            self._in_order_until = when
            times.append(when)
        return times

    def push(self, item: T, now: float) -> None:
        """Send ``item`` into the link at ``now``."""
        for when in self.delivery_times(now):
            self._counter += 1
            heapq.heappush(self._queue, (when, self._counter, item))

    def next_due(self) -> float | None:
        """When the next held item is due (None: the link is empty)."""
        return self._queue[0][0] if self._queue else None

    def pop_due(self, now: float) -> list[T]:
        """Take every item due at ``now``, in delivery order."""
        due = []
        while self._queue and self._queue[0][0] <= now:
            due.append(heapq.heappop(self._queue)[2])
        self.delivered += len(due)
        return due

    def pop_all(self) -> list[T]:
        """Take every held item at once, in delivery order (the link is being shut down)."""
        items = [entry[2] for entry in sorted(self._queue)]
        self._queue.clear()
        self.delivered += len(items)
        return items

    @property
    def held(self) -> int:
        """How many copies are in the link now."""
        return len(self._queue)

    @property
    def idle(self) -> bool:
        """Whether a datagram may skip the link: nothing held and nothing to simulate."""
        return not self._queue and self.conditions.perfect
