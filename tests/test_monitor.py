"""The ``/monitor`` page in a real headless Chromium (Debian's), driven by Playwright.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium`` with a fresh
profile. The page must show what the cluster is, and follow it when a node dies.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pygase_core import Client
from tests.cluster_support import Cluster, cluster_fixture, redis_server_fixture
from tests.waiting import wait_for

pytest.importorskip("redis", reason="needs the cluster extra")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the browser extra")

__all__ = ["cluster_fixture", "redis_server_fixture"]  # the fixtures this module uses

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


@pytest.fixture
def page() -> Iterator[Any]:
    """A page of Debian's Chromium, headless, with a fresh profile."""
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: tools/test.sh installs it (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="pygase-chromium-")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1200, "height": 800},
        )
        try:
            yield context.new_page()
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)


def rows(page: Any, table: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in row.split("\t")]
        for row in page.eval_on_selector_all(
            f"#{table} tbody tr",
            "rows => rows.map(r => [...r.cells].map(c => c.textContent).join('\\t'))",
        )
    ]


def test_the_monitor_page_shows_the_cluster_and_follows_a_dead_node(
    cluster: Cluster, page: Any, tmp_path: Path
) -> None:
    nodes = [cluster.node(), cluster.node()]
    _mm, url = cluster.matchmaker()
    clients = [Client(timeout=3.0) for _ in range(5)]
    try:
        for client in clients:
            client.connect_in_thread(matchmaker=url, room="chase", options={"mode": "tag"})
        room_ids = {client.room_id for client in clients}
        assert len(room_ids) == 2  # 4 seats, then a second room
        node_ids = {process.name.replace("node ", "node-") for process in nodes}

        page.goto(f"{url}/monitor")

        def shown() -> bool:
            room_rows = rows(page, "rooms")
            seated = sum(int(row[3].split("/")[0]) for row in room_rows)
            members = sum(row[6].count(" ms, ") for row in room_rows)
            return (
                {row[0] for row in rows(page, "nodes")} == node_ids
                and {row[0] for row in room_rows} == room_ids
                and seated == 5 and members == 5
            )

        wait_for(shown, 15.0, "the page never matched the cluster")
        summary = page.inner_text("#summary")
        assert summary == "2 nodes, 2 rooms, 5 players"
        for row in rows(page, "rooms"):
            assert row[1] == "chase" and row[5] == '{"mode":"tag"}'
        by_address = {row[0]: row[1] for row in rows(page, "nodes")}
        for process in nodes:
            port = process.name.split()[-1]
            assert by_address[f"node-{port}"] == f"127.0.0.1:{port}"
        wait_for(lambda: page.text_content("#plot-players text").endswith("now 5"), 10.0,
                 "the plot of players online does not end at 5")
        page.screenshot(path=str(tmp_path / "monitor.png"), full_page=True)

        # One room on each node (the least loaded gets the new room); kill one node.
        hosted = {row[2]: row[0] for row in rows(page, "rooms")}
        assert set(hosted) == node_ids
        nodes[0].kill()
        gone = nodes[0].name.replace("node ", "node-")

        def dropped() -> bool:
            return gone not in {row[0] for row in rows(page, "nodes")} and hosted[gone] not in {
                row[0] for row in rows(page, "rooms")}

        wait_for(dropped, 6.0, "the page still shows the killed node or its room")
        assert page.inner_text("#summary").startswith("1 node, 1 room,")
        page.screenshot(path=str(tmp_path / "monitor-after-kill.png"), full_page=True)
    finally:
        for client in clients:
            client.disconnect()
