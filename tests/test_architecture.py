"""The import rules of docs/architecture.md, checked on the source itself: no part imports
another part, and the core imports no part outside the composition root (`ebbflow/app.py`,
`ebbflow/cli/`), which itself imports no input or output plugin."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PARTS = {"collector": "collector", "rules": "rules", "scaler": "scaler", "exporters": "exporters"}
PLUGIN_PARTS = {"collector", "exporters"}  # inputs and outputs
COMPOSITION_ROOT = ("ebbflow.app", "ebbflow.cli")


def modules() -> Iterator[tuple[str, Path]]:
    """(module name as installed, file) of every source file."""
    for folder, package in [("ebbflow", "ebbflow"), *((f, f"ebbflow.{f}") for f in PARTS)]:
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join((package, *parts)), path


def imported(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """Every module the file imports, resolved to its full name, with the line."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            yield name, node.lineno


def part_of(name: str) -> str | None:
    pieces = name.split(".")
    if len(pieces) >= 2 and pieces[0] == "ebbflow" and pieces[1] in PARTS:
        return pieces[1]
    return None


def violations() -> list[str]:
    found = []
    for module, path in modules():
        own = part_of(module)
        root = module.startswith(COMPOSITION_ROOT)
        for name, line in imported(module, path):
            other = part_of(name)
            where = f"{path.relative_to(ROOT)}:{line}: imports {name}"
            if other is None or other == own:
                continue
            if own is not None:
                found.append(f"{where} (a part imports another part)")
            elif not root:
                found.append(f"{where} (the core imports a part)")
            elif other in PLUGIN_PARTS:
                found.append(f"{where} (the composition root imports a plugin)")
    return found


def test_no_part_imports_another_and_the_core_imports_no_plugin() -> None:
    assert violations() == []


def test_the_check_catches_what_it_forbids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule that could not fail would prove nothing: plant each kind of violation."""
    fake = tmp_path / "repo"
    for folder in ("ebbflow", "ebbflow/cli", *PARTS):
        (fake / folder).mkdir(parents=True)
    (fake / "rules" / "engine.py").write_text("from ebbflow.scaler.runner import ActionRunner\n")
    (fake / "scaler" / "x.py").write_text("from ..rules import gate\n")
    (fake / "ebbflow" / "nodes.py").write_text("import ebbflow.collector.node\n")
    (fake / "ebbflow" / "cli" / "run.py").write_text("from ebbflow.exporters import bench\n")
    (fake / "ebbflow" / "app.py").write_text("from ebbflow.rules.engine import RuleEngine\n")
    monkeypatch.setitem(globals(), "ROOT", fake)
    found = violations()
    assert len(found) == 4, found
    assert any("rules/engine.py:1" in f and "another part" in f for f in found)
    assert any("scaler/x.py:1: imports ebbflow.rules" in f for f in found)
    assert any("ebbflow/nodes.py:1" in f and "the core imports a part" in f for f in found)
    assert any("ebbflow/cli/run.py:1" in f and "imports a plugin" in f for f in found)
