"""The cluster for real: redis-server, ``pygase node`` and ``pygase matchmaker`` processes."""

from __future__ import annotations

import pytest

from pygase_core import Client, ClientStatus
from tests.cluster_support import Cluster, cluster_fixture, http, redis_server_fixture

__all__ = ["cluster_fixture", "redis_server_fixture"]  # the fixtures this module uses
from tests.waiting import wait_for

pytest.importorskip("redis", reason="needs the cluster extra")


def test_a_client_matchmakes_into_a_room_on_a_node(cluster: Cluster) -> None:
    node = cluster.node()
    _mm, url = cluster.matchmaker()
    client = Client(timeout=2.0)
    client.connect_in_thread(matchmaker=url, room="chase", options={"mode": "classic"})
    try:
        assert client.status is ClientStatus.CONNECTED
        assert client.room_id
        status, rooms = http("GET", f"{url}/rooms/chase")
        assert status == 200
        assert [room["room_id"] for room in rooms] == [client.room_id]
        assert rooms[0]["address"] == node.name.replace("node ", "127.0.0.1:")
        wait_for(lambda: http("GET", f"{url}/rooms/chase")[1][0]["clients"] == 1, 5.0)
    finally:
        client.disconnect()
