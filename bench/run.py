"""pygase against PyGaSe 0.3.1, side by side on this machine: ``python3 bench/run.py``.

The command sets up what it needs and then runs everything: two virtual environments under
``bench/`` (``.venv-pygase`` with this checkout and matplotlib, ``.venv-peer`` with Python 3.11
and ``pygase==0.3.1``), then for each implementation the game loop check and the scenario at
each client count, with the server in one process and the bots in others. It prints a table,
writes ``bench/results/results.json`` and ``bench/results/results.png``, and with
``--update-readme`` puts the figures into ``bench/README.md``. ``--quick`` takes about a minute,
the full run a few; ``--help`` lists the knobs. See bench/README.md for what each figure means.

The setup stage needs only the standard library; once the environments exist, the script runs
itself again with the pygase environment's interpreter, which has everything else.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEER_REQUIREMENTS = ["pygase==0.3.1", "curio<0.10", "msgpack", "pluggy"]
MPG_REQUIREMENTS = ["mpgameserver==0.2.4", "msgpack", "pluggy"]
PYGASE_EXTRAS = ["matplotlib", "py-spy"]
TICK_RATE = 50.0
TICK_MS = 1000.0 / TICK_RATE
IMPLS = ("pygase", "pygase-asyncio", "peer", "colyseus", "mpgameserver")
"""Everything the bench can measure, in the order it measures them."""
LABELS = {
    "pygase": "pygase (uvloop)",
    "pygase-asyncio": "pygase (asyncio loop)",
    "peer": "PyGaSe 0.3.1",
    "colyseus": "Colyseus 0.16 (WebSocket over TCP)",
    "mpgameserver": "mpgameserver 0.2.4",
}
COLYSEUS = BENCH / "colyseus"
README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"

# -- setting up ------------------------------------------------------------------------------------


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def find_python(version: str) -> str | None:
    """A ``pythonX.Y`` on PATH, or the running interpreter if it is that version."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        return sys.executable
    return shutil.which(f"python{version}")


def ensure_venv(venv: Path, python: str, packages: list[str], log: Any) -> Path:
    """Create ``venv`` with ``packages`` unless a stamp says it already has exactly them."""
    stamp = venv / "bench-stamp.json"
    wanted = {"python": python, "packages": packages}
    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return venv_python(venv)
    log(f"setting up {venv.relative_to(ROOT)}: {' '.join(packages)}")
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv_python(venv)), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *packages], check=True)
    stamp.write_text(json.dumps(wanted))
    return venv_python(venv)


def ensure_node_modules(log: Any) -> bool:
    """``npm install`` in bench/colyseus unless its node_modules match package.json (pinned)."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        log("bench: node and npm are not on PATH; Colyseus is left out")
        return False
    wanted = (COLYSEUS / "package.json").read_text()
    stamp = COLYSEUS / "node_modules" / ".bench-stamp"
    if stamp.exists() and stamp.read_text() == wanted:
        return True
    log("setting up bench/colyseus/node_modules (npm install)")
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--no-package-lock"], cwd=COLYSEUS, check=True
    )
    stamp.write_text(wanted)
    return True


def setup(args: argparse.Namespace) -> list[str]:
    """The environments of the implementations asked for; returns the extra arguments that
    tell the re-executed run where they are."""
    base = sys.executable if sys.version_info >= (3, 10) else shutil.which("python3.11")
    if base is None:
        raise SystemExit("bench: pygase needs Python 3.10 or newer")
    own = ensure_venv(
        BENCH / ".venv-pygase", base, ["-e", f"{ROOT}[fast]", *PYGASE_EXTRAS], print
    )
    extra = [str(own)]
    python311 = find_python("3.11")
    for impl, venv, packages, flag in (
        ("peer", ".venv-peer", PEER_REQUIREMENTS, "--peer-python"),
        ("mpgameserver", ".venv-mpgameserver", MPG_REQUIREMENTS, "--mpg-python"),
    ):
        if impl not in args.impls:
            continue
        if python311 is None:
            raise SystemExit(f"bench: {LABELS[impl]} runs on Python 3.11 here; install python3.11")
        extra += [flag, str(ensure_venv(BENCH / venv, python311, packages, print))]
    if "colyseus" in args.impls and not ensure_node_modules(print):
        extra += ["--leave-out", "colyseus"]
    return extra


# -- running one measurement -----------------------------------------------------------------------


class ServerProcess:
    """The scenario server, spoken to through its stdin and stdout."""

    def __init__(self, argv: list[str], env: dict[str, str], impl: str) -> None:
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        )
        line = self._line()
        if not line.startswith("READY "):
            raise RuntimeError(f"{impl} server did not start: {line!r}")
        self.port = int(line.split()[1])

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"server exited with {self.process.wait()}")
        return line.strip()

    def mark(self, label: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(f"mark {label}\n")
        self.process.stdin.flush()
        while True:
            line = self._line()
            if line.startswith(f"MARK {label} "):
                reading: dict[str, Any] = json.loads(line.split(" ", 2)[2])
                return reading

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write("quit\n")
                self.process.stdin.flush()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


def machine_busy() -> tuple[float, float] | None:
    """Busy and total CPU time of the whole machine so far, in seconds (Linux), else None.

    Other programs on the machine take cores from the server and the bots; the difference
    between the machine's busy time and ours over the window tells the reader how much.
    """
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    ticks = [int(f) for f in fields[:8]]
    hz = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def sleep_until(wall: float) -> None:
    delay = wall - time.time()
    if delay > 0:
        time.sleep(delay)


def result_line(output: str) -> dict[str, Any]:
    for line in output.splitlines():
        if line.startswith("RESULT "):
            data: dict[str, Any] = json.loads(line[len("RESULT ") :])
            return data
    raise RuntimeError(f"no RESULT line in:\n{output[-2000:]}")


def loop_env(impl: str) -> dict[str, str]:
    """pygase on uvloop (its fast extra, installed here) or on the plain asyncio loop."""
    return {"PYGASE_EVENT_LOOP": "asyncio" if impl == "pygase-asyncio" else "auto"}


def server_argv(impl: str, args: argparse.Namespace, epoch: float) -> list[str]:
    common = ["--epoch", repr(epoch), "--entities", str(args.entities)]
    common += ["--tick-rate", str(TICK_RATE)]
    if impl == "colyseus":
        return [args.node, str(COLYSEUS / "server.js"), *common]
    python, kind = args.pythons[impl], "pygase" if impl.startswith("pygase") else impl
    return [python, str(BENCH / "server.py"), "--impl", kind, *common]


def swarm_argv(impl: str, args: argparse.Namespace, port: int, size: int, first: int,
               epoch: float, start_at: float, end_at: float) -> list[str]:
    common = [
        "--port", str(port), "--count", str(size), "--first-id", str(first),
        "--rate", str(args.rate), "--epoch", repr(epoch),
        "--start-at", repr(start_at), "--end-at", repr(end_at),
    ]
    if impl == "colyseus":
        return [args.node, str(COLYSEUS / "bots.js"), *common]
    python, kind = args.pythons[impl], "pygase" if impl.startswith("pygase") else impl
    return [python, str(BENCH / "swarm.py"), "--impl", kind, *common]


def run_scenario(
    impl: str, clients: int, args: argparse.Namespace, profile: Path | None
) -> dict[str, Any]:
    """One implementation at one client count: server, swarm processes, readings, figures."""
    epoch = time.time()
    env = loop_env(impl)
    server = ServerProcess(server_argv(impl, args, epoch), env, impl)
    swarms: list[subprocess.Popen[str]] = []
    spy: subprocess.Popen[str] | None = None
    try:
        per = max(1, args.bots_per_process)
        sizes = [per] * (clients // per) + ([clients % per] if clients % per else [])
        start_at = time.time() + 1.5 + 0.03 * clients + args.warmup
        end_at = start_at + args.seconds
        first = 0
        for size in sizes:
            swarms.append(
                subprocess.Popen(
                    swarm_argv(impl, args, server.port, size, first, epoch, start_at, end_at),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env={**os.environ, **env},
                )
            )
            first += size
        sleep_until(start_at)
        busy_before = machine_busy()
        before = server.mark("start")
        if profile is not None:
            spy = start_profile(server.process.pid, args.seconds, profile)
        sleep_until(end_at)
        after = server.mark("end")
        busy_after = machine_busy()
        outputs = []
        for swarm in swarms:
            try:
                out, _ = swarm.communicate(timeout=30 + args.seconds)
            except subprocess.TimeoutExpired:
                swarm.kill()
                out, _ = swarm.communicate()
            outputs.append(result_line(out))
        if spy is not None:
            spy.wait(timeout=60)
    finally:
        for swarm in swarms:
            if swarm.poll() is None:
                swarm.kill()
                swarm.wait()
        server.stop()
    result = figures(impl, clients, before, after, outputs, server_header(impl))
    if busy_before is not None and busy_after is not None:
        window = after["wall"] - before["wall"]
        busy = busy_after[0] - busy_before[0]
        ours = after["cpu"] - before["cpu"] + sum(o.get("cpu", 0.0) for o in outputs)
        result["other_load_cores"] = round(max(busy - ours, 0.0) / window, 2)
    return result


def start_profile(pid: int, seconds: float, output: Path) -> subprocess.Popen[str] | None:
    """Sample the server with py-spy over the window, if py-spy is there."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        print("bench: py-spy is not installed; no profile")
        return None
    return subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(output),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def server_header(impl: str) -> int:
    """Bytes of framing in each state datagram: the fixed cost the wire target allows for."""
    if impl == "peer":
        return 12 + 2  # PyGaSe 0.3.1: protocol id, sequence, ack, ack bits; update length
    if not impl.startswith("pygase"):
        return 0  # Colyseus: TCP, no datagrams; mpgameserver: not broken down here
    from pygase_core.protocol import packets

    return packets.DATA_PACKET_OVERHEAD + packets.EVENT_FLOOR_SIZE + packets.STATE_FRAGMENT_OVERHEAD


def figures(
    impl: str,
    clients: int,
    before: dict[str, Any],
    after: dict[str, Any],
    outputs: list[dict[str, Any]],
    header: int,
) -> dict[str, Any]:
    """Turn the readings of one scenario into the figures of the table."""
    from pygase_core.tools.bots import BotProbe, SwarmReport

    probes = []
    for output in outputs:
        for data in output["probes"]:
            probe = BotProbe(data["bot_id"])
            probe.ages = data["ages"]
            probe.round_trips = data["round_trips"]
            for name in (
                "frames",
                "frames_without_time",
                "versions",
                "states",
                "events_sent",
                "events_echoed",
            ):
                setattr(probe, name, data[name])
            probes.append(probe)
    window = after["wall"] - before["wall"]
    report = SwarmReport.from_probes(
        probes,
        window,
        sum(o["connected"] for o in outputs),
        [e for o in outputs for e in o["errors"]],
    )
    client_seconds = clients * window

    def delta(name: str) -> float:
        return float(after[name] - before[name])

    ticks = delta("ticks")
    samples = after["change_samples"]
    change_size = after["change_bytes"] / samples if samples else 0.0
    change_per_s = change_size * ticks / window
    out_per_cs = delta("bytes_out") / client_seconds
    datagrams_per_cs = delta("datagrams_out") / client_seconds
    # What the clients needed: one tick's changes for every state update they applied (all
    # entities move every tick, so a combined delta of several ticks is about one tick's size).
    states_per_cs = report.states / client_seconds
    needed = change_size * states_per_cs
    wire_ratio = out_per_cs / needed if needed else None
    framed = (out_per_cs - datagrams_per_cs * header) / needed if needed and header else None
    return {
        "impl": impl,
        "clients": clients,
        "connected": report.connected,
        "window_s": round(window, 3),
        "age_p50_ms": report.age_p50_ms,
        "age_p99_ms": report.age_p99_ms,
        "worst_bot_age_p99_ms": report.worst_bot_age_p99_ms,
        "bots_behind": report.bots_behind,
        "round_trip_p50_ms": report.round_trip_p50_ms,
        "round_trip_p99_ms": report.round_trip_p99_ms,
        "events_sent": report.events_sent,
        "events_echoed": report.events_echoed,
        "server_cpu_ms_per_client_s": round(1000.0 * delta("cpu") / client_seconds, 3),
        "server_core_pct": round(100.0 * delta("cpu") / window, 1),
        "server_ticks_per_s": round(ticks / window, 2),
        "server_tick_late_mean_ms": round(1000.0 * delta("late_sum") / ticks, 3) if ticks else None,
        "bytes_out_per_client_s": round(out_per_cs, 1),
        "datagrams_out_per_client_s": round(datagrams_per_cs, 2),
        "bytes_in_per_client_s": round(delta("bytes_in") / client_seconds, 1),
        "states_per_client_s": round(states_per_cs, 2),
        "change_msgpack_bytes_per_tick": round(change_size, 1),
        "change_msgpack_bytes_per_s": round(change_per_s, 1),
        "wire_over_msgpack": round(wire_ratio, 3) if wire_ratio else None,
        "wire_less_headers_over_msgpack": round(framed, 3) if framed else None,
        "header_bytes_per_datagram": header,
        "bot_processes": len(outputs),
        "bot_core_pct_max": round(max(100.0 * o["cpu"] / o["window"] for o in outputs), 1)
        if outputs and all(o.get("window") for o in outputs)
        else None,
        "errors": report.errors,
    }


def add_marginal_cpu(runs: list[dict[str, Any]]) -> None:
    """Server CPU per *added* client-second, from each implementation's smallest client count.

    The average per client-second includes the cost of running the game itself (the tick
    thread), which no number of clients changes; the slope between two counts does not.
    """
    for impl in {run["impl"] for run in runs}:
        mine = sorted((r for r in runs if r["impl"] == impl), key=lambda r: r["clients"])
        base = mine[0]
        for run in mine[1:]:
            added = run["clients"] - base["clients"]
            key = "server_cpu_ms_per_client_s"
            per_second = run[key] * run["clients"] - base[key] * base["clients"]
            run["server_cpu_marginal_ms_per_client_s"] = round(per_second / added, 3)


def run_micro(python: str) -> dict[str, Any]:
    """bench/micro.py: the server's fixed cost per tick and a client's decode, by CPU clock."""
    print("bench: in-process costs (micro.py)", flush=True)
    out = subprocess.run(
        [python, str(BENCH / "micro.py")], capture_output=True, text=True, timeout=300
    )
    return result_line(out.stdout + out.stderr)


def run_loopcheck(python: str, impl: str, seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        [str(python), str(BENCH / "loopcheck.py"), "--impl", impl, "--seconds", str(seconds)],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    result = result_line(out.stdout + out.stderr)
    result["impl"] = impl
    return result


# -- reporting -------------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


TABLE = [
    ("impl", "impl", 0),
    ("clients", "clients", 0),
    ("conn", "connected", 0),
    ("age p50", "age_p50_ms", 1),
    ("age p99", "age_p99_ms", 1),
    ("worst bot p99", "worst_bot_age_p99_ms", 1),
    ("behind", "bots_behind", 0),
    ("rtt p50", "round_trip_p50_ms", 1),
    ("rtt p99", "round_trip_p99_ms", 1),
    ("cpu ms/client-s", "server_cpu_ms_per_client_s", 2),
    ("added ms/client-s", "server_cpu_marginal_ms_per_client_s", 2),
    ("server core %", "server_core_pct", 0),
    ("states/client-s", "states_per_client_s", 1),
    ("B/client-s", "bytes_out_per_client_s", 0),
    ("wire/msgpack", "wire_over_msgpack", 2),
    ("less headers", "wire_less_headers_over_msgpack", 2),
    ("bots core %", "bot_core_pct_max", 0),
    ("other load", "other_load_cores", 2),
]


def table_rows(runs: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    head = [title for title, _, _ in TABLE]
    rows = [[fmt(run.get(key), digits) for _, key, digits in TABLE] for run in runs]
    return head, rows


def text_table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def loop_table(loops: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    head = ["impl", "steps/s (of 50)", "rate error %", "step jitter p99 ms", "idle CPU % of a core"]
    rows = [
        [
            loop["impl"],
            fmt(loop["rate"], 2),
            fmt(loop["rate_error_pct"], 3),
            fmt(loop["step_jitter_p99_ms"], 2),
            fmt(loop["idle_cpu_pct"], 2),
        ]
        for loop in loops
    ]
    return head, rows


def find(runs: list[dict[str, Any]], impl: str, clients: int) -> dict[str, Any] | None:
    return next((r for r in runs if r["impl"] == impl and r["clients"] == clients), None)


def targets(
    runs: list[dict[str, Any]], loops: list[dict[str, Any]], micro: dict[str, Any] | None = None
) -> list[tuple[str, str, str]]:
    """The server-speed targets for pygase: (target, measured, verdict)."""
    checks: list[tuple[str, str, str]] = []

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("holds" if ok else "missed")

    if micro:
        tick = micro["server_tick_cpu_ms"]
        checks.append(
            (
                f"fixed cost of a {micro['entities']}-entity update <= 0.4 ms of CPU per tick"
                " (micro.py)",
                f"{tick:.3f} ms",
                verdict(tick <= 0.4),
            )
        )
    one = find(runs, "pygase", 1)
    if one:
        share = one["server_core_pct"] / 100.0
        checks.append(
            ("server with one client < 0.03 of a core", f"{share:.3f}", verdict(share < 0.03))
        )
    run = find(runs, "pygase", 100)
    marginal = run.get("server_cpu_marginal_ms_per_client_s") if run else None
    if marginal is not None:
        checks.append(
            (
                "server CPU per added client-second <= 2 ms (1 to 100 clients)",
                f"{marginal:.2f} ms",
                verdict(marginal <= 2.0),
            )
        )
    for n, limit in ((10, 23.0), (100, 30.0)):
        run = find(runs, "pygase", n)
        if run and run["age_p99_ms"] is not None:
            checks.append(
                (
                    f"state age p99 <= {limit:.0f} ms at {n} clients",
                    f"{run['age_p99_ms']:.1f} ms",
                    verdict(run["age_p99_ms"] <= limit),
                )
            )
    if micro:
        decode = micro["client_decode_us"]
        checks.append(
            (
                f"client decode and apply <= 50 us per {micro['delta_bytes']}-byte delta"
                " (micro.py)",
                f"{decode:.1f} us",
                verdict(decode <= 50.0),
            )
        )
    for n in (10, 30, 100):
        mine, peer = find(runs, "pygase", n), find(runs, "peer", n)
        mine_m = mine.get("server_cpu_marginal_ms_per_client_s") if mine else None
        peer_m = peer.get("server_cpu_marginal_ms_per_client_s") if peer else None
        peer_counts = [r["clients"] for r in runs if r["impl"] == "peer"]
        peer_base = find(runs, "peer", min(peer_counts)) if peer_counts else None
        keeps_up = (
            peer is not None
            and peer_base is not None
            and peer["states_per_client_s"] >= 0.9 * peer_base["states_per_client_s"]
        )
        if mine_m and peer_m and keeps_up:
            checks.append(
                (
                    f"CPU per added client >= 20x less than PyGaSe 0.3.1 (1 to {n} clients)",
                    f"{peer_m / mine_m:.1f}x ({peer_m:.1f} against {mine_m:.2f} ms)",
                    verdict(peer_m / mine_m >= 20),
                )
            )
    ratios = [
        r["wire_less_headers_over_msgpack"]
        for r in runs
        if r["impl"] == "pygase" and r["wire_less_headers_over_msgpack"]
    ]
    if ratios:
        checks.append(
            (
                "wire bytes <= 1.15 x msgpack of the changes + headers",
                f"{min(ratios):.2f} to {max(ratios):.2f}",
                verdict(max(ratios) <= 1.15),
            )
        )
    limit = 1.5 * TICK_MS
    for run in sorted(runs, key=lambda r: r["clients"]):
        if run["impl"] == "pygase" and run["round_trip_p50_ms"] is not None:
            checks.append(
                (
                    f"event round trip p50 <= 1.5 ticks ({limit:.0f} ms), {run['clients']} clients",
                    f"{run['round_trip_p50_ms']:.1f} ms",
                    verdict(run["round_trip_p50_ms"] <= limit),
                )
            )
    for loop in loops:
        if loop["impl"] == "pygase":
            checks.append(
                (
                    "game loop within 2 % of its rate",
                    f"{loop['rate_error_pct']:+.3f} %",
                    verdict(abs(loop["rate_error_pct"]) <= 2),
                )
            )
            checks.append(
                (
                    "server with no clients < 2 % of a core",
                    f"{loop['idle_cpu_pct']:.2f} %",
                    verdict(loop["idle_cpu_pct"] < 2),
                )
            )
    return checks


def plot(runs: list[dict[str, Any]], path: Path, subtitle: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: matplotlib is not installed; no plot")
        return False
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    styles = {
        "pygase": ("tab:blue", LABELS["pygase"]),
        "pygase-asyncio": ("tab:cyan", LABELS["pygase-asyncio"]),
        "peer": ("tab:red", LABELS["peer"]),
        "colyseus": ("tab:green", "Colyseus 0.16 (TCP)"),
        "mpgameserver": ("tab:purple", LABELS["mpgameserver"]),
    }
    for impl, (color, label) in styles.items():
        mine = sorted((r for r in runs if r["impl"] == impl), key=lambda r: r["clients"])
        if not mine:
            continue
        x = [r["clients"] for r in mine]
        for ax, key, title in (
            (axes[0], "age", "state age (ms)"),
            (axes[2], "round_trip", "event round trip (ms)"),
        ):
            ax.plot(x, [r[f"{key}_p50_ms"] for r in mine], "o-", color=color, label=f"{label} p50")
            ax.plot(x, [r[f"{key}_p99_ms"] for r in mine], "s--", color=color, label=f"{label} p99")
            ax.set_title(title)
        axes[1].plot(
            x, [r["server_cpu_ms_per_client_s"] for r in mine], "o-", color=color, label=label
        )
        axes[1].set_title("server CPU per client-second (ms)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("clients")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"100 entities moving at {TICK_RATE:.0f} Hz; {subtitle}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def summarize_profile(raw: Path, top: int = 25) -> str:
    """Self and inclusive shares of py-spy's raw samples, the busiest functions first."""
    self_time: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        self_time[frames[-1]] = self_time.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    if not total:
        return "no samples"
    lines = [f"{total} samples (py-spy, 250 Hz, busy threads only)", "", "self time:"]
    for name, count in sorted(self_time.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * count / total:5.1f}%  {name}")
    lines += ["", "inclusive time:"]
    for name, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[: top * 2]:
        lines.append(f"  {100 * count / total:5.1f}%  {name}")
    return "\n".join(lines)


def update_readme(markdown: str) -> None:
    readme = BENCH / "README.md"
    text = readme.read_text()
    start, end = text.index(README_START), text.index(README_END)
    readme.write_text(text[: start + len(README_START)] + "\n" + markdown + "\n" + text[end:])


# -- main ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="pygase against PyGaSe 0.3.1, side by side (see bench/README.md)."
    )
    parser.add_argument("--quick", action="store_true", help="short windows (about a minute)")
    parser.add_argument("--tiny", action="store_true", help="a smoke test: seconds, for tests")
    parser.add_argument("--no-peer", action="store_true", help="measure pygase only")
    parser.add_argument(
        "--no-setup",
        action="store_true",
        help="use this interpreter for pygase (it must have pygase_core)",
    )
    parser.add_argument(
        "--impls",
        default=",".join(IMPLS),
        help=f"what to measure, in this order (default: {','.join(IMPLS)})",
    )
    parser.add_argument("--peer-python", help="interpreter with PyGaSe 0.3.1 (with --no-setup)")
    parser.add_argument("--mpg-python", help="interpreter with mpgameserver (with --no-setup)")
    parser.add_argument(
        "--node", default=shutil.which("node") or "node", help="Node.js, for Colyseus"
    )
    parser.add_argument("--leave-out", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--counts", help="client counts for both, e.g. 1,10,30,100")
    parser.add_argument("--extra-counts", help="further client counts for pygase alone")
    parser.add_argument("--seconds", type=float, help="measuring window per scenario")
    parser.add_argument("--warmup", type=float, help="seconds between connecting and measuring")
    parser.add_argument("--loop-seconds", type=float, help="window of the game loop check")
    parser.add_argument("--entities", type=int, default=100)
    parser.add_argument("--rate", type=float, default=5.0, help="input events per bot-second")
    parser.add_argument("--bots-per-process", type=int, default=50)
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the pygase server in its 100-client scenario"
    )
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument(
        "--report-only", type=Path, metavar="JSON", help="re-render a results.json, run nothing"
    )
    args = parser.parse_args(argv)
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    defaults = {
        "full": ("1,10,30,100", "200", 10.0, 2.0, 10.0),
        "quick": ("1,10,30,100", "", 3.0, 1.0, 3.0),
        "tiny": ("2", "", 1.0, 0.5, 1.0),
    }[mode]
    args.mode = mode
    wanted = ["pygase"] if args.no_peer else [i.strip() for i in args.impls.split(",") if i.strip()]
    unknown = [i for i in wanted if i not in IMPLS]
    if unknown:
        parser.error(f"unknown implementation(s): {', '.join(unknown)}")
    args.impls = [i for i in wanted if i not in args.leave_out]
    args.counts = [int(n) for n in (args.counts or defaults[0]).split(",") if n]
    extra = defaults[1] if args.extra_counts is None else args.extra_counts
    args.extra_counts = [int(n) for n in extra.split(",") if n]
    args.seconds = args.seconds or defaults[2]
    args.warmup = defaults[3] if args.warmup is None else args.warmup
    args.loop_seconds = args.loop_seconds or defaults[4]
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.report_only is not None:
        sys.path.insert(0, str(ROOT))
        args.out.mkdir(parents=True, exist_ok=True)
        report(json.loads(args.report_only.read_text()), args.out, args.update_readme)
        return 0
    if not args.no_setup:
        own, *extra = setup(args)
        os.execv(own, [own, str(Path(__file__).resolve()), *argv, "--no-setup", *extra])
    sys.path.insert(0, str(ROOT))
    args.pythons = {"pygase": sys.executable, "pygase-asyncio": sys.executable}
    for impl, given in (("peer", args.peer_python), ("mpgameserver", args.mpg_python)):
        if impl in args.impls:
            if not given:
                raise SystemExit(f"bench: --no-setup needs an interpreter for {impl} (see --help)")
            args.pythons[impl] = given
    args.out.mkdir(parents=True, exist_ok=True)
    hidden = {args.peer_python, args.mpg_python}
    command = "python3 bench/run.py " + " ".join(
        a
        for a in argv
        if a not in ("--no-setup", "--update-readme")
        and not a.startswith(("--peer-python", "--mpg-python"))
        and a not in hidden
    )
    micro = run_micro(sys.executable)
    started = time.monotonic()
    loops = []
    for impl in ("pygase", "peer"):
        if impl in args.impls:
            print(f"bench: {impl} game loop, {args.loop_seconds:g} s", flush=True)
            loops.append(run_loopcheck(args.pythons[impl], impl, args.loop_seconds))
    runs = []
    for impl in args.impls:
        counts = args.counts + (args.extra_counts if impl == "pygase" else [])
        for clients in counts:
            print(f"bench: {impl} with {clients} client(s), {args.seconds:g} s", flush=True)
            profile = None
            if args.profile and impl == "pygase" and clients == 100:
                profile = args.out / "profile-pygase-100.raw"
            run = run_scenario(impl, clients, args, profile)
            runs.append(run)
            print("  " + text_table(*table_rows([run])).replace("\n", "\n  "), flush=True)
            if profile is not None and profile.exists():
                summary = summarize_profile(profile)
                (args.out / "profile-pygase-100.txt").write_text(summary + "\n")
    add_marginal_cpu(runs)
    elapsed = time.monotonic() - started
    info = machine()
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    results = {
        "date": date,
        "machine": info,
        "command": command,
        "mode": args.mode,
        "seconds_per_scenario": args.seconds,
        "runtime_s": round(elapsed, 1),
        "scenario": {
            "entities": args.entities,
            "tick_rate": TICK_RATE,
            "events_per_bot_s": args.rate,
            "frame_rate": 60.0,
        },
        "game_loop": loops,
        "micro": micro,
        "runs": runs,
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    report(results, args.out, args.update_readme)
    return 0


def micro_text(micro: dict[str, Any] | None) -> str:
    if not micro:
        return ""
    return (
        f"\n\nIn-process, by CPU clock (micro.py): the server's fixed cost per tick"
        f" {micro['server_tick_cpu_ms']:.3f} ms for {micro['entities']} entities (moving them,"
        f" the update, the push, the payload); a client's decode and apply"
        f" {micro['client_decode_us']:.1f} us per {micro['delta_bytes']}-byte delta."
    )


def report(results: dict[str, Any], out: Path, readme: bool) -> None:
    """Print the tables and targets, draw the plot; with ``readme``, publish them."""
    runs, loops, info = results["runs"], results["game_loop"], results["machine"]
    checks = targets(runs, loops, results.get("micro"))
    results["targets"] = [{"target": t, "measured": m, "verdict": v} for t, m, v in checks]
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    subtitle = f"{info['cores']} cores, {info['cpu']}, {results['date']}"
    plotted = plot(runs, out / "results.png", subtitle)
    print()
    print(text_table(*table_rows(runs)))
    print()
    print(text_table(*loop_table(loops)))
    print(micro_text(results.get("micro")).strip())
    print()
    for target, measured, verdict in checks:
        print(f"{verdict:>7}  {target}: {measured}")
    print(
        f"\nbench: {results['runtime_s']:.0f} s; wrote {out / 'results.json'}"
        + (f" and {out / 'results.png'}" if plotted else "")
    )
    if not readme:
        return
    shutil.copy(out / "results.json", BENCH / "results.json")
    if plotted:
        shutil.copy(out / "results.png", BENCH / "results.png")
    target_lines = "\n".join(f"| {t} | {m} | {v} |" for t, m, v in checks)
    update_readme(
        f"Measured {results['date']} on {info['cores']} cores ({info['cpu']}, {info['system']},"
        f" Python {info['python']}), {results['mode']} run,"
        f" {results['seconds_per_scenario']:g} s per scenario,"
        f" {results['runtime_s'] / 60:.1f} min in all:\n\n"
        f"```sh\n{results['command'].strip()}\n```\n\n"
        + markdown_table(*table_rows(runs))
        + micro_text(results.get("micro"))
        + "\n\nGame loop and idle server:\n\n"
        + markdown_table(*loop_table(loops))
        + "\n\nThe targets, for pygase (on uvloop):\n\n"
        + "| target | measured | verdict |\n|---|---|---|\n"
        + target_lines
        + (
            "\n\n![state age, server CPU and event round trip against clients](results.png)"
            if plotted
            else ""
        )
    )
    print("bench: updated bench/README.md")


if __name__ == "__main__":
    raise SystemExit(main())
