"""One game of chase: a :class:`~pygase_core.Room` that applies :mod:`examples.chase.rules`.

The server runs any number of these side by side, each with its own arena, game loop and
players (see :mod:`examples.chase.server`). The room's hooks are where the rules meet the
network:

* ``on_join`` adds the client's player, named by the ``name`` join option;
* ``on_leave`` removes it, whether the client said goodbye or its connection was lost;
* inputs (``Client.send_input([dx, dy])``) steer the sender's own player: the room declares
  :func:`examples.chase.rules.steer` as the step (``self.predict``), which the default
  ``on_input`` applies once per tick and the clients replay to predict their own player;
* ``MOVE(dx, dy)`` events (from bots) set a direction that ``time_step`` follows;
* ``time_step`` moves everyone and tags, 50 times per second, and sends each tag to the room's
  clients as ``TAG(tagger_id, tagged_id)``.

A player's id is its client's seat id (``client.id``), which the client learns when it joins
(``Client.id``), so no event is needed to tell a client which player is its own. The room's
metadata, shown in room listings, names the players (``{"players": ["Ann", "Robo"]}``).
"""

from __future__ import annotations

import random
from typing import Any

from examples.chase import rules
from pygase_core import GameState, Room, RoomClient

#: Seats per room, unless the server says otherwise (``--max-players``).
MAX_PLAYERS = 6
#: Where each client's own player is in the state: what inputs move and clients predict.
PREDICTED = "players.{me}"


class ChaseRoom(Room):
    """A game of chase for up to :attr:`max_clients` players.

    ``seed`` seeds each room's spawn points (None: unpredictable). :func:`chase_room` makes a
    subclass with other values, so that the capacity is the server's choice, never a client's.
    """

    max_clients = MAX_PLAYERS
    seed: int | None = None

    def on_create(self, options: dict[str, Any]) -> GameState:
        """Set up an empty arena."""
        self._rng = random.Random(self.seed)
        self._names: dict[str, str] = {}
        self.metadata = {"players": []}
        self.register_event_handler("MOVE", self.on_move)
        self.predict(PREDICTED, rules.steer)
        return rules.initial_state()

    def on_join(
        self, client: RoomClient, options: dict[str, Any], game_state: GameState
    ) -> dict[str, Any]:
        """Add the client's player to the arena."""
        update = rules.join(
            options.get("name", ""), game_state=game_state, player_id=client.id, rng=self._rng
        )
        self._names[client.id] = update["players"][client.id]["name"]
        self._list_players()
        return update

    def on_leave(
        self, client: RoomClient, consented: bool, game_state: GameState
    ) -> dict[str, Any]:
        """Remove the client's player, handing the chaser role on if need be."""
        self._names.pop(client.id, None)
        self._list_players()
        return rules.leave(game_state=game_state, player_id=client.id)

    def on_move(
        self, dx: Any, dy: Any, *, client: RoomClient, game_state: GameState, **_: Any
    ) -> dict[str, Any]:
        """Steer the sender's player (``MOVE(dx, dy)``)."""
        return rules.move(dx, dy, game_state=game_state, player_id=client.id)

    def time_step(self, game_state: GameState, dt: float) -> dict[str, Any]:
        """Move everyone and tag; tell the room's clients about a tag."""
        update, tag = rules.step(game_state, dt)
        if tag is not None:
            self.dispatch_event("TAG", tag.tagger, tag.tagged, retries=3)
        return update

    def _list_players(self) -> None:
        # A new dict each time: listings copy the metadata on the server's I/O thread.
        self.metadata = {"players": list(self._names.values())}


def chase_room(max_players: int = MAX_PLAYERS, seed: int | None = None) -> type[ChaseRoom]:
    """A :class:`ChaseRoom` class with ``max_players`` seats per room and the given ``seed``."""
    if isinstance(max_players, bool) or not isinstance(max_players, int) or max_players < 1:
        raise ValueError("max_players must be an int of at least 1")

    class SizedChaseRoom(ChaseRoom):
        pass

    SizedChaseRoom.max_clients = max_players
    SizedChaseRoom.seed = seed
    return SizedChaseRoom
