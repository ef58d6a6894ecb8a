"""The distributions, for real: build them, check them, install the wheel and run it.

This builds a source distribution and a wheel from a clean copy of the checkout (as
``python -m build`` does: the wheel is built from the unpacked sdist, which proves the sdist is
complete), runs ``twine check`` on both, then installs the wheel with every extra into a fresh
virtual environment and runs the ``pygase`` command from there, in an empty directory, so that
nothing is imported from the checkout by accident.

It needs the package index (or a pip cache that holds the dependencies) and takes a minute or
two, most of it installing arcade and pygame.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("build", reason="needs the dev extra (build)")
pytest.importorskip("twine", reason="needs the dev extra (twine)")

ROOT = Path(__file__).resolve().parent.parent
NAME = "pygase"
PACKAGES = ("pygase_core", "pygase_pygame", "pygase_arcade")
#: Artefacts of builds and runs in the checkout, kept out of the copy that is built.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv*", "*.egg-info", "build", "dist", "__pycache__", "*.pyc", ".*_cache",
    ".hypothesis", "results",
)

pytestmark = pytest.mark.timeout(900)


@dataclass
class Built:
    sdist: Path
    wheel: Path
    log: str


def run(*command: str | Path, cwd: Path | None = None, timeout: float = 600) -> str:
    """Run a command with the environment of a user's shell; return its output, or fail."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONHOME")
    }
    env["PYTHONNOUSERSITE"] = "1"
    env.setdefault("ARCADE_HEADLESS", "1")
    env.setdefault("SDL_VIDEODRIVER", "dummy")
    env.setdefault("SDL_AUDIODRIVER", "dummy")
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}"
    return result.stdout


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout without the artefacts of earlier builds and runs.

    A stale ``pygase.egg-info/SOURCES.txt`` in the checkout would otherwise add whatever an
    earlier build had listed to the new sdist.
    """
    copy = tmp_path_factory.mktemp("source") / NAME
    shutil.copytree(ROOT, copy, ignore=NOT_SOURCE)
    return copy


@pytest.fixture(scope="module")
def built(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """``python -m build`` of a clean copy of the checkout, into a temporary directory."""
    dist = tmp_path_factory.mktemp("dist")
    log = run(sys.executable, "-m", "build", "--outdir", dist, source)
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    return Built(sdist, wheel, log)


@pytest.fixture(scope="module")
def installed(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtual environment with the wheel and all its extras; yields its bin dir."""
    root = tmp_path_factory.mktemp("venv")
    venv.create(root, with_pip=True)
    bin_dir = root / ("Scripts" if sys.platform == "win32" else "bin")
    python = bin_dir / "python"
    run(
        python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        f"{built.wheel}[pygame,arcade,crypto]",
    )
    yield bin_dir


def test_the_build_is_clean_and_twine_check_passes(built: Built) -> None:
    warnings = [
        line for line in built.log.splitlines() if re.search(r"warn|deprecat", line, re.I)
    ]
    assert warnings == [], built.log
    output = run(sys.executable, "-m", "twine", "check", "--strict", built.sdist, built.wheel)
    assert output.count("PASSED") == 2, output


EDITABLE_BUILD = """if True:
    import sys
    from build import ProjectBuilder
    from build.env import DefaultIsolatedEnv

    source, outdir = sys.argv[1:]
    with DefaultIsolatedEnv() as env:
        builder = ProjectBuilder.from_isolated_env(env, source)
        env.install(builder.build_system_requires)
        env.install(builder.get_requires_for_build("editable"))
        print(builder.build("editable", outdir))
"""


def test_an_editable_build_gives_no_warnings(source: Path, tmp_path: Path) -> None:
    """What ``pip install -e .`` builds: setuptools warns about nothing in our configuration.

    (With the packages found in a flat layout and no ``package-dir``, it installs an import
    hook and warns about folders named like the packages.)
    """
    log = run(sys.executable, "-c", EDITABLE_BUILD, source, tmp_path)
    assert log.rstrip().endswith(".whl"), log
    warnings = [line for line in log.splitlines() if re.search(r"warn|deprecat", line, re.I)]
    assert warnings == [], log


def test_the_sdist_holds_the_sources_the_license_and_the_whole_test_suite(built: Built) -> None:
    with tarfile.open(built.sdist) as archive:
        prefix = archive.getnames()[0].split("/")[0]
        names = {name.removeprefix(prefix + "/") for name in archive.getnames()}
        pkg_info = archive.extractfile(f"{prefix}/PKG-INFO").read().decode()  # type: ignore[union-attr]
    tracked = {"README.md", "LICENSE", "pyproject.toml", "MANIFEST.in"}
    tracked |= {f"{package}/py.typed" for package in PACKAGES}
    tracked |= {path.relative_to(ROOT).as_posix() for path in (ROOT / "tests").glob("*.py")}
    tracked |= {path.relative_to(ROOT).as_posix() for path in (ROOT / "examples").rglob("*.py")}
    assert tracked <= names, sorted(tracked - names)
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert "License-Expression: MIT" in pkg_info and "License-File: LICENSE" in pkg_info


def test_the_wheel_holds_every_sub_package_and_the_typing_markers(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as archive:
        names = set(archive.namelist())
    for sub in ["protocol", "model", "edge", "tools"]:
        assert f"pygase_core/{sub}/__init__.py" in names, sub
    for package in PACKAGES:
        assert f"{package}/py.typed" in names
    assert {name.split("/")[0] for name in names if "dist-info" not in name} == set(PACKAGES)
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)


def test_the_installed_command_shows_its_help(installed: Path, tmp_path: Path) -> None:
    output = run(installed / "pygase", "--help", cwd=tmp_path)
    assert "serve" in output and "demo" in output and "bots" in output
    output = run(installed / "pygase", "demo", "--help", cwd=tmp_path)
    assert "--seconds" in output


def test_the_installed_demo_runs(installed: Path, tmp_path: Path) -> None:
    output = run(
        installed / "pygase", "demo", "--seconds", "2", "--clients", "2", cwd=tmp_path, timeout=60
    )
    assert "bot 1: time_order" in output and "server: 2 clients" in output, output
    assert output.rstrip().endswith("pygase demo: done"), output


def test_the_installed_packages_import_from_the_environment(
    installed: Path, tmp_path: Path
) -> None:
    code = """if True:
        import json
        from importlib import metadata
        import cryptography
        import pygase_arcade, pygase_core, pygase_pygame
        import pygase_core.protocol.connection, pygase_core.tools.cli
        from pygase_arcade import PygaseWindow  # imports arcade itself (headless here)
        from pygase_pygame import PygaseClientMixin  # imports pygame
        from pygase_core import Backend, Client
        from pygase_core.protocol.crypto import generate_key
        plugins = sorted(e.name for e in metadata.entry_points(group="pygase"))
        print(json.dumps({
            "files": [m.__file__ for m in (pygase_core, pygase_pygame, pygase_arcade)],
            "plugins": plugins,
            "key": len(generate_key()),
        }))
    """
    output = run(installed / "python", "-c", code, cwd=tmp_path)
    found = json.loads(output.strip().splitlines()[-1])
    environment = str(installed.parent.resolve())
    assert all(file.startswith(environment) for file in found["files"]), found
    assert found["plugins"] == ["arcade", "pygame"]
    assert found["key"] == 32
