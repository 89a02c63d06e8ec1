"""The public surface: ``__all__`` is honest, public classes live at ``twelvelabs_async``, and
the README's error tree is the one in ``_exceptions.py``."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import msgspec
import pytest

import twelvelabs_async
from twelvelabs_async import _exceptions

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.parametrize("name", twelvelabs_async.__all__)
def test_every_exported_name_is_importable_and_public(name: str) -> None:
    """Each name of ``__all__`` imports from the top-level package; classes show the package
    as their module (msgspec models keep their public ``twelvelabs_async.types`` or
    ``.webhooks`` module, through which msgspec resolves their annotations)."""
    value = getattr(twelvelabs_async, name)
    namespace: dict[str, object] = {}
    exec(f"from twelvelabs_async import {name}", namespace)
    assert namespace[name] is value
    if isinstance(value, type):
        if issubclass(value, msgspec.Struct):
            assert value.__module__ in ("twelvelabs_async.types", "twelvelabs_async.webhooks") or (
                value.__module__.startswith("twelvelabs_async.types.")
            ), value.__module__
            assert not any(part.startswith("_") for part in value.__module__.split("."))
        else:
            assert value.__module__ == "twelvelabs_async", value.__module__


def test_all_lists_every_public_name_once_and_sorted_by_kind() -> None:
    """No duplicates; every public error class and every class defined in a private module
    and re-exported by ``__init__`` is listed."""
    exported = twelvelabs_async.__all__
    assert len(exported) == len(set(exported))
    assert set(_exceptions.__all__) <= set(exported)
    for name, value in vars(twelvelabs_async).items():
        if name.startswith("_") or not isinstance(value, type):
            continue
        assert name in exported, f"{name} is importable but missing from __all__"


# --- the README's error tree ------------------------------------------------------------------


def tree_from_classes() -> list[str]:
    """The hierarchy under TwelveLabsError as indented names, from the classes themselves."""
    lines: list[str] = []

    def walk(cls: type, depth: int) -> None:
        lines.append("  " * depth + cls.__name__)
        children = [
            getattr(_exceptions, name)
            for name in _exceptions.__all__
            if cls in getattr(_exceptions, name).__bases__
        ]
        for child in children:  # in __all__ order: the tree's order is checked separately
            walk(child, depth + 1)

    walk(_exceptions.TwelveLabsError, 0)
    return lines


def tree_from_drawing(drawing: str) -> list[str]:
    """Indented names from a box-drawing tree (``├──``, ``│   ``, ``└──``)."""
    lines = []
    for raw in drawing.strip("\n").splitlines():
        match = re.match(r"^((?:[│ ]   )*)(?:[├└]── )?(\w+)", raw)
        assert match, raw
        depth = len(match.group(1)) // 4 + (1 if ("├" in raw or "└" in raw) else 0)
        lines.append("  " * depth + match.group(2))
    return lines


def readme_tree() -> str:
    """The ``text`` block of the README's Errors section."""
    section = README.read_text(encoding="utf-8").split("## Errors", 1)[1]
    return section.split("```text\n", 1)[1].split("```", 1)[0]


def module_tree() -> str:
    """The literal block (after ``::``) of ``_exceptions.py``'s docstring."""
    block = (_exceptions.__doc__ or "").split("::\n\n", 1)[1].split("\n\n", 1)[0]
    return textwrap.dedent(block)


def test_readme_error_tree_is_the_module_tree() -> None:
    """The README draws exactly the tree of ``_exceptions.py`` (same names, same parents)."""
    assert tree_from_drawing(readme_tree()) == tree_from_drawing(module_tree())


def test_module_error_tree_matches_the_classes() -> None:
    """The tree drawn in ``_exceptions.py``'s docstring is the real class hierarchy."""
    drawn = tree_from_drawing(module_tree())
    assert parents(drawn) == parents(tree_from_classes())


def parents(lines: list[str]) -> dict[str, str | None]:
    """``{class name: parent name}`` from indented names."""
    result: dict[str, str | None] = {}
    stack: list[str] = []
    for line in lines:
        depth = (len(line) - len(line.lstrip())) // 2
        name = line.strip()
        del stack[depth:]
        result[name] = stack[-1] if stack else None
        stack.append(name)
    return result
