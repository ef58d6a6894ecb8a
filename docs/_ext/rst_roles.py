"""A griffe extension for the API pages: render reStructuredText roles in docstrings.

pygase's docstrings use Google-style sections, which mkdocstrings reads, and reStructuredText
roles in their text (``:class:`Server```, ``:meth:`~pygase_core.Client.connect```), which it
does not. This extension rewrites each role, when the docs are built, into a cross-reference
to the API page of the object it names, shown as code. A name that has no API page (a private
helper, or an object of another library) stays plain code. The docstrings themselves are not
changed.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(
    r":(?:py:)?(?P<role>class|meth|func|attr|data|mod|obj|exc|const):`(?P<target>[^`]+)`"
)


def _resolve(obj: griffe.Object, name: str) -> str | None:
    """The full path of ``name`` as seen from ``obj``'s scope, if it can be told."""
    head, _, rest = name.partition(".")
    scope: griffe.Object | None = obj
    while scope is not None:
        try:
            resolved = scope.resolve(head)
        except (griffe.NameResolutionError, AttributeError, KeyError, ValueError):
            scope = scope.parent
            continue
        return f"{resolved}.{rest}" if rest else resolved
    if name.startswith(("pygase_core.", "pygase_pygame.", "pygase_arcade.")):
        return name
    return None


def _rewrite(obj: griffe.Object, text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        target = match["target"].strip()
        short = target.startswith("~")
        target = target.lstrip("~")
        title = target.rsplit(".", 1)[-1] if short else target
        path = _resolve(obj, target)
        if path is None:
            return f"`{title}`"
        return f'<autoref identifier="{path}" optional><code>{title}</code></autoref>'

    return ROLE.sub(replace, text)


class RstRoles(griffe.Extension):
    """Rewrite the roles of every docstring in a loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        seen: set[int] = set()
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if obj.docstring is not None:
                obj.docstring.value = _rewrite(obj, obj.docstring.value)
            for member in obj.members.values():
                if not member.is_alias:
                    stack.append(member)  # type: ignore[arg-type]
