"""The plugin system: hook specifications, discovery, disabling, and the order hooks fire in.

The hook-order tests run a real client against a real backend on loopback, so they check what
the client actually calls, not what it is documented to call.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest

from pygase_core import Backend, Client, ClientStatus, GameState, UsageError
from pygase_core import plugins as plugins_module
from pygase_core.edge.frames import FrameSession, session_attribute, state_as_dict
from pygase_core.plugins import (
    DISABLE_ENV_VAR,
    PygaseHookSpecs,
    disabled_plugin_names,
    get_plugin_manager,
    hookimpl,
)

WAIT = 15.0


def wait_for(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    """Poll ``predicate`` until it holds; fail the test if it never does."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.005)


class Recorder:
    """A plugin that writes down every hook call, with the thread it happened on."""

    def __init__(self, dispatcher: Callable[[Callable[[], object]], None] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.threads: dict[str, set[int]] = {}
        self._dispatcher = dispatcher
        self.lock = threading.Lock()

    def _record(self, name: str, **details: Any) -> None:
        with self.lock:
            self.calls.append((name, details))
            self.threads.setdefault(name, set()).add(threading.get_ident())

    def names(self) -> list[str]:
        with self.lock:
            return [name for name, _ in self.calls]

    @hookimpl
    def pygase_client_created(self, client: Client) -> None:
        self._record("pygase_client_created", client=client)

    @hookimpl
    def pygase_client_connected(self, client: Client) -> None:
        self._record("pygase_client_connected", status=client.status)

    @hookimpl
    def pygase_client_disconnected(self, client: Client, reason: str) -> None:
        self._record("pygase_client_disconnected", reason=reason)

    @hookimpl
    def pygase_state_changed(self, client: Client, game_state: Any, time_order: int) -> None:
        self._record(
            "pygase_state_changed",
            time_order=time_order,
            state_time_order=game_state.time_order,
            counter=getattr(game_state, "counter", None),
        )

    @hookimpl
    def pygase_event_received(
        self, client: Client, event_type: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self._record("pygase_event_received", event_type=event_type, args=args, kwargs=kwargs)

    @hookimpl
    def pygase_event_dispatcher(self, client: Client) -> Any:
        self._record("pygase_event_dispatcher")
        return self._dispatcher

    @hookimpl
    def pygase_frame_started(self, client: Client, frame_time: float) -> None:
        self._record("pygase_frame_started", frame_time=frame_time)

    @hookimpl
    def pygase_frame_ended(self, client: Client, frame_time: float) -> None:
        self._record("pygase_frame_ended", frame_time=frame_time)


@pytest.fixture
def backend() -> Iterator[Backend]:
    """A real backend on loopback whose counter grows and which echoes PING as PONG."""
    holder: dict[str, Backend] = {}

    def on_ping(value: int, *, client_address: Any, **_: Any) -> dict[str, Any]:
        holder["backend"].server.dispatch_event("PONG", value, target_client=client_address)
        return {}

    server = Backend(
        initial_game_state=GameState(counter=0),
        time_step_function=lambda game_state, dt: {"counter": game_state.counter + 1},
        event_handlers={"PING": on_ping},
    )
    holder["backend"] = server
    server.run_in_thread("localhost", 0)
    yield server
    server.shutdown()


def manager_with(*plugins: object) -> pluggy.PluginManager:
    manager = get_plugin_manager()
    for plugin in plugins:
        manager.register(plugin)
    return manager


# -- the specification --------------------------------------------------------------------------


def test_every_hook_is_prefixed_typed_and_documented() -> None:
    hooks = [name for name in vars(PygaseHookSpecs) if not name.startswith("_")]
    assert set(hooks) == {
        "pygase_client_created",
        "pygase_client_connected",
        "pygase_client_disconnected",
        "pygase_state_changed",
        "pygase_event_received",
        "pygase_event_dispatcher",
        "pygase_frame_started",
        "pygase_frame_ended",
    }
    for name in hooks:
        function = getattr(PygaseHookSpecs, name)
        assert function.__doc__, name
        assert "return" in function.__annotations__, name
        assert all(
            parameter in function.__annotations__
            for parameter in function.__code__.co_varnames[1 : function.__code__.co_argcount]
        ), name


def test_event_dispatcher_is_first_result_and_the_rest_are_broadcast() -> None:
    manager = get_plugin_manager()
    for caller in manager.hook.__dict__.values():
        if isinstance(caller, pluggy.HookCaller) and caller.spec is not None:
            first_result = caller.spec.opts.get("firstresult", False)
            assert first_result == (caller.name == "pygase_event_dispatcher")


def test_a_new_manager_every_call_and_none_at_import() -> None:
    assert get_plugin_manager() is not get_plugin_manager()
    assert not any(
        isinstance(value, pluggy.PluginManager) for value in vars(plugins_module).values()
    )


def test_importing_the_core_never_imports_a_framework() -> None:
    code = textwrap.dedent(
        """
        import sys
        import pygase_core, pygase_core.plugins
        from pygase_core import Client
        manager = pygase_core.get_plugin_manager()
        Client(plugin_manager=manager)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("pygame", "arcade", "pyglet"))
        assert not loaded, loaded
        assert manager.has_plugin("pygame") and manager.has_plugin("arcade")
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- discovery and disabling --------------------------------------------------------------------


def test_the_installed_distribution_declares_both_adapters() -> None:
    entry_points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="pygase")}
    assert entry_points["pygame"] == "pygase_pygame.plugin:hooks"
    assert entry_points["arcade"] == "pygase_arcade.plugin:hooks"


def test_adapters_are_discovered_through_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DISABLE_ENV_VAR, raising=False)
    manager = get_plugin_manager()
    import pygase_arcade.plugin
    import pygase_pygame.plugin

    assert manager.get_plugin("pygame") is pygase_pygame.plugin.hooks
    assert manager.get_plugin("arcade") is pygase_arcade.plugin.hooks
    distributions = {dist.project_name for _, dist in manager.list_plugin_distinfo()}
    assert "pygase" in distributions


def test_third_party_plugins_are_discovered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_distribution(tmp_path, "thirdparty_plugin", "thirdparty", HOOK_OK)
    monkeypatch.syspath_prepend(str(tmp_path))
    manager = get_plugin_manager()
    plugin = manager.get_plugin("thirdparty")
    assert plugin is not None
    assert manager.hook.pygase_event_dispatcher(client=None) == "third party was here"


def test_plugins_named_in_the_environment_are_not_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_distribution(tmp_path, "thirdparty_plugin", "thirdparty", HOOK_OK)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(DISABLE_ENV_VAR, " thirdparty ,arcade,")
    manager = get_plugin_manager()
    assert manager.is_blocked("thirdparty") and manager.is_blocked("arcade")
    assert not manager.has_plugin("thirdparty") and not manager.has_plugin("arcade")
    assert manager.get_plugin("pygame") is not None
    assert manager.hook.pygase_event_dispatcher(client=None) is None


def test_disabled_plugin_names_parsing() -> None:
    assert disabled_plugin_names({}) == []
    assert disabled_plugin_names({DISABLE_ENV_VAR: ""}) == []
    assert disabled_plugin_names({DISABLE_ENV_VAR: "pygame, ,arcade"}) == ["pygame", "arcade"]


def test_a_misspelled_hook_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_distribution(tmp_path, "typo_plugin", "typo", HOOK_TYPO)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(pluggy.PluginValidationError, match="pygase_state_chnaged"):
        get_plugin_manager()


HOOK_OK = """
from pygase_core.plugins import hookimpl

@hookimpl
def pygase_event_dispatcher(client):
    return "third party was here"
"""

HOOK_TYPO = """
from pygase_core.plugins import hookimpl

@hookimpl
def pygase_state_chnaged(client, game_state, time_order):
    pass
"""


def write_distribution(root: Path, module: str, entry_point: str, source: str) -> None:
    """Install a tiny distribution with a ``pygase`` entry point into ``root``."""
    (root / f"{module}.py").write_text(source)
    dist_info = root / f"{module}-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(f"[pygase]\n{entry_point} = {module}\n")


# -- the hooks, fired by a real client ----------------------------------------------------------


def test_hooks_fire_in_the_documented_order(backend: Backend) -> None:
    recorder = Recorder()
    client = Client(plugin_manager=manager_with(recorder))
    assert recorder.names() == ["pygase_client_created"]
    client.connect_in_thread(backend.server.port)  # type: ignore[arg-type]
    client.dispatch_event("PING", 7)
    wait_for(lambda: "pygase_event_received" in recorder.names())
    wait_for(lambda: recorder.names().count("pygase_state_changed") >= 3)
    client.disconnect()
    wait_for(lambda: "pygase_client_disconnected" in recorder.names())

    names = recorder.names()
    assert names[:4] == [
        "pygase_client_created",
        "pygase_event_dispatcher",
        "pygase_client_connected",
        "pygase_state_changed",
    ]
    assert names[-1] == "pygase_client_disconnected"
    assert names.count("pygase_client_disconnected") == 1
    assert names.count("pygase_event_dispatcher") == 1
    connected = dict(recorder.calls)["pygase_client_connected"]
    assert connected["status"] is ClientStatus.CONNECTED


def test_state_changed_gets_the_live_state_and_growing_time_orders(backend: Backend) -> None:
    recorder = Recorder()
    client = Client(plugin_manager=manager_with(recorder))
    client.connect_in_thread(backend.server.port)  # type: ignore[arg-type]
    wait_for(lambda: recorder.names().count("pygase_state_changed") >= 5)
    client.disconnect()
    changes = [details for name, details in recorder.calls if name == "pygase_state_changed"]
    orders = [change["time_order"] for change in changes]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)
    assert all(change["time_order"] == change["state_time_order"] for change in changes)
    assert changes[-1]["counter"] is not None and changes[-1]["counter"] > 0


def test_event_received_sees_the_event_before_its_handler(backend: Backend) -> None:
    recorder = Recorder()
    client = Client(plugin_manager=manager_with(recorder))
    seen_by_handler: list[tuple[int, int]] = []

    def on_pong(value: int) -> None:
        with recorder.lock:
            seen_by_handler.append((value, len(recorder.calls)))

    client.register_event_handler("PONG", on_pong)
    client.connect_in_thread(backend.server.port)  # type: ignore[arg-type]
    client.dispatch_event("PING", 42)
    wait_for(lambda: bool(seen_by_handler))
    client.disconnect()
    received = [
        (index, details)
        for index, (name, details) in enumerate(recorder.calls)
        if name == "pygase_event_received"
    ]
    assert received[0][1] == {"event_type": "PONG", "args": (42,), "kwargs": {}}
    value, calls_when_handled = seen_by_handler[0]
    assert value == 42 and received[0][0] < calls_when_handled


def test_without_a_dispatcher_handlers_run_on_the_io_thread(backend: Backend) -> None:
    client = Client(plugin_manager=manager_with(Recorder()))
    handled_on: list[int] = []
    client.register_event_handler("PONG", lambda value: handled_on.append(threading.get_ident()))
    client.connect_in_thread(backend.server.port)  # type: ignore[arg-type]
    client.dispatch_event("PING", 1)
    wait_for(lambda: bool(handled_on))
    client.disconnect()
    assert handled_on[0] != threading.get_ident()


def test_the_first_dispatcher_decides_where_handlers_run(backend: Backend) -> None:
    queued: list[Callable[[], object]] = []
    declining = Recorder(dispatcher=None)
    claiming = Recorder(dispatcher=queued.append)
    client = Client(plugin_manager=manager_with(declining, claiming))
    handled_on: list[int] = []
    client.register_event_handler("PONG", lambda value: handled_on.append(threading.get_ident()))
    client.connect_in_thread(backend.server.port)  # type: ignore[arg-type]
    client.dispatch_event("PING", 1)
    wait_for(lambda: bool(queued))
    assert handled_on == []  # queued for "the frame thread", not run
    queued.pop(0)()
    client.disconnect()
    assert handled_on == [threading.get_ident()]


def test_disconnected_reports_the_reason(backend: Backend) -> None:
    recorder = Recorder()
    client = Client(plugin_manager=manager_with(recorder))
    client.connect_in_thread(backend.server.port)  # type: ignore[arg-type]
    backend.shutdown()
    wait_for(lambda: "pygase_client_disconnected" in recorder.names())
    reason = dict(recorder.calls)["pygase_client_disconnected"]["reason"]
    assert reason and reason == client.disconnect_reason


# -- the adapters' plugin modules and the shared FrameSession ------------------------------------


def test_adapter_plugins_only_claim_their_own_clients(backend: Backend) -> None:
    import pygase_arcade.plugin
    import pygase_pygame.plugin

    plain = Client()
    assert plain.plugin_manager.hook.pygase_event_dispatcher(client=plain) is None
    session = FrameSession("pygame", pygase_pygame.plugin.hooks)
    assert getattr(session.client, session_attribute("pygame")) is session
    assert pygase_arcade.plugin.hooks.pygase_event_dispatcher(client=session.client) is None
    dispatcher = session.client.plugin_manager.hook.pygase_event_dispatcher(client=session.client)
    assert dispatcher == session.dispatch_to_frame_thread


def test_frame_session_runs_everything_on_the_frame_thread(backend: Backend) -> None:
    import pygase_pygame.plugin

    recorder = Recorder()
    session = FrameSession(
        "pygame",
        pygase_pygame.plugin.hooks,
        interpolate=["counter"],
        interpolation_delay=0.0,
        plugin_manager=manager_with(recorder),
    )
    announcements: list[tuple[str, Any, int]] = []
    session.on_server_event = lambda event_type, args, kwargs: announcements.append(  # type: ignore[method-assign]
        (event_type, args, threading.get_ident())
    )
    session.on_status_changed = lambda status, reason: announcements.append(  # type: ignore[method-assign]
        ("status", status, threading.get_ident())
    )
    handled: list[tuple[int, int]] = []
    session.register_event_handler(
        "PONG", lambda value: handled.append((value, threading.get_ident()))
    )
    assert session.pump() is None  # nothing received yet
    session.connect(backend.server.port)  # type: ignore[arg-type]
    session.dispatch_event("PING", 5)
    deadline = time.monotonic() + WAIT
    while not handled or session.snapshot is None:
        assert time.monotonic() < deadline
        session.pump()
        session.end_frame()
        time.sleep(0.01)
    session.disconnect()
    session.pump()

    me = threading.get_ident()
    assert handled == [(5, me)]
    assert ("status", ClientStatus.CONNECTED, me) in announcements
    assert ("PONG", (5,), me) in announcements
    assert announcements[-1] == ("status", ClientStatus.DISCONNECTED, me)
    assert session.snapshot is not None and session.snapshot.counter > 0
    assert session.status is ClientStatus.DISCONNECTED
    assert session.disconnect_reason and session.disconnect_reason in session.status_text()

    names = recorder.names()
    assert "pygase_frame_started" in names and "pygase_frame_ended" in names
    frames = [name for name in names if name.startswith("pygase_frame_")]
    assert all(  # started and ended alternate, starting with a start
        name == ("pygase_frame_started" if index % 2 == 0 else "pygase_frame_ended")
        for index, name in enumerate(frames)
    )
    assert recorder.threads["pygase_frame_started"] == {me}
    assert recorder.threads["pygase_state_changed"] != {me}


def test_frame_session_stats_text(backend: Backend) -> None:
    import pygase_pygame.plugin

    session = FrameSession("pygame", pygase_pygame.plugin.hooks)
    assert session.stats_text() == "disconnected"
    session.connect(backend.server.port)  # type: ignore[arg-type]
    wait_for(lambda: session.client.stats is not None and session.client.stats.rtt is not None)
    text = session.stats_text()
    session.disconnect()
    assert text.startswith("RTT ") and " ms" in text and "loss" in text and "kB/s" in text


def test_frame_session_registers_its_plugin_on_a_bare_manager() -> None:
    import pygase_pygame.plugin

    manager = pluggy.PluginManager("pygase")
    manager.add_hookspecs(PygaseHookSpecs)
    session = FrameSession("pygame", pygase_pygame.plugin.hooks, plugin_manager=manager)
    assert manager.get_plugin("pygame") is pygase_pygame.plugin.hooks
    assert session.client.plugin_manager is manager


def test_frame_session_refuses_a_disabled_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    import pygase_pygame.plugin

    monkeypatch.setenv(DISABLE_ENV_VAR, "pygame")
    with pytest.raises(UsageError, match=DISABLE_ENV_VAR):
        FrameSession("pygame", pygase_pygame.plugin.hooks)


def test_state_as_dict_accepts_states_mappings_and_objects() -> None:
    assert state_as_dict(GameState(a=1, b={"c": 2})) == {"a": 1, "b": {"c": 2}}
    assert state_as_dict({"a": 1}) == {"a": 1}

    class Plain:
        def __init__(self) -> None:
            self.a = 1
            self._hidden = 2

    assert state_as_dict(Plain()) == {"a": 1}


def test_frame_session_runs_ack_callbacks_on_the_frame_thread(backend: Backend) -> None:
    import pygase_pygame.plugin

    session = FrameSession("pygame", pygase_pygame.plugin.hooks)
    acked: list[tuple[str, int]] = []

    async def async_ack() -> None:
        acked.append(("async", threading.get_ident()))

    session.connect(backend.server.port)  # type: ignore[arg-type]
    session.dispatch_event(
        "PING", 1, retries=3, ack_callback=lambda: acked.append(("plain", threading.get_ident()))
    )
    session.dispatch_event("PING", 2, retries=3, ack_callback=async_ack)
    deadline = time.monotonic() + WAIT
    while len(acked) < 2:
        assert time.monotonic() < deadline
        session.pump()
        time.sleep(0.01)
    session.disconnect()
    me = threading.get_ident()
    assert sorted(acked) == [("async", me), ("plain", me)]
