"""Every code block of the README and the docs runs, as a reader would run it.

How blocks are found, grouped and run, how ports are chosen and how a block is marked as not
run is described in :mod:`tests.docs_blocks`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from tests.docs_blocks import (
    ROOT,
    DocsError,
    Group,
    GroupRun,
    command,
    groups,
    markdown_files,
    output_matches,
    parse,
    relative,
)


def _all_groups() -> list[Group]:
    found: list[Group] = []
    for path in markdown_files():
        with contextlib.suppress(DocsError):  # reported by test_every_block_can_run
            found.extend(groups(path))
    return found


def test_every_block_can_run() -> None:
    """No block escapes: each is runnable, shown output, or marked as not run with a reason."""
    problems = []
    for path in markdown_files():
        try:
            for group in groups(path):
                for block in group.blocks:
                    if block.language == "sh":
                        for number, line in enumerate(block.code.splitlines()):
                            command(line, f"{block.where}+{number}")
        except DocsError as error:
            problems.append(str(error))
    assert not problems, "\n".join(problems)


def test_the_docs_have_blocks() -> None:
    """The collector sees the blocks that are there (a broken parser would find none)."""
    for path in markdown_files():
        text = path.read_text(encoding="utf-8")
        fences = sum(1 for line in text.splitlines() if line.lstrip().startswith("```"))
        assert len(parse(path)) == fences // 2, relative(path)
    assert len(_all_groups()) >= 10


@pytest.mark.parametrize("group", _all_groups(), ids=lambda group: group.id)
def test_block(group: Group, tmp_path: Path) -> None:
    GroupRun(group, tmp_path).run()


# -- the collector itself ------------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "page.md"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_unmarked_block_of_unknown_kind_fails(tmp_path: Path) -> None:
    with pytest.raises(DocsError, match="no test knows how to run a 'ini' block"):
        groups(_write(tmp_path, "```ini\nx = 1\n```\n"))
    with pytest.raises(DocsError, match="must be marked as output"):
        groups(_write(tmp_path, "```text\nhello\n```\n"))
    with pytest.raises(DocsError, match="no test knows how to run 'bash'"):
        command("bash tools/test.sh", "page.md:1")


def test_markers(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "<!-- not run: it installs packages -->\n```sh\npip install pygase\n```\n\n"
        '<!-- test: group=g file=a.py background ready="up and running" -->\n\n'
        "```python\nprint(1)\n```\n"
        "<!-- test: group=g -->\n```python\nprint(2)\n```\n"
        "<!-- test: group=g output -->\n```text\n2\n```\n",
    )
    blocks = parse(path)
    assert blocks[0].not_run == "it installs packages"
    assert blocks[1].option("ready") == "up and running" and blocks[1].has("background")
    (group,) = groups(path)
    assert [block.line for block in group.blocks] == [8, 12, 16]
    with pytest.raises(DocsError, match="needs a reason"):
        parse(_write(tmp_path, "<!-- not run: -->\n```sh\nls\n```\n"))
    with pytest.raises(DocsError, match="unknown key"):
        parse(_write(tmp_path, "<!-- test: grup=x -->\n```sh\nls\n```\n"))


def test_output_matching() -> None:
    assert output_matches("server got it\nfoo=... bar=2.0\n", "a\nserver got it\nfoo=0.31 bar=2.0")
    assert not output_matches("foo=... bar=2.0\nserver got it", "server got it\nfoo=1 bar=2.0")
    assert not output_matches("bar=2.0", "bar=0.5")


def test_commands() -> None:
    argv, env = command("PYGASE_LINK=bad python mygame.py  # a comment", "x") or ([], {})
    assert env == {"PYGASE_LINK": "bad"} and argv[1:] == ["mygame.py"]
    assert command("   # only a comment", "x") is None
    assert ROOT.joinpath("README.md").exists()
