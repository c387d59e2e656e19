"""The house as docs/architecture.md draws it: layers whose imports run one way (web → control →
processor → store; Twilio's side only through the processor's exports), modules of at most 300
lines, each subpackage saying what lives in it, and every file the document names there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fakeproc"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

# What each layer may import, besides itself and the shared leaves.
LEAVES = {"fakeproc.config", "fakeproc.errors", "fakeproc.settings"}
MAY_IMPORT = {
    "store": set(),
    "processor": {"store"},
    "control": {"processor", "store"},
    "web": {"control", "processor", "store"},
    "twilio": {"processor:exports"},  # `from fakeproc.processor import …`, nothing deeper
    "testing": {"factory", "control", "processor", "store", "web", "twilio"},
}
LAYERS = set(MAY_IMPORT)
MAX_LINES = 300


def modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if "migrations" not in path.parts)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, name: str) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, names) of every import of fakeproc in module `name` (the file
    at `path`), at any depth."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names
                      if alias.name.split(".")[0] == "fakeproc"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "fakeproc":
                found.append((node.lineno, target, [alias.name for alias in node.names]))
    return found


def layer_of(module: str) -> str:
    """The layer a module belongs to: a subpackage, a shared leaf, or the top (the factory,
    the command line, the server, the demo), which may import anything."""
    parts = module.split(".")
    if module in LEAVES:
        return "leaf"
    if module == "fakeproc":
        return "factory"
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    return "top"


def refusals(path: Path, name: str | None = None) -> list[str]:
    """The imports of a module that run against the layers (`name`: its module name)."""
    name = name or module_name(path)
    own = layer_of(name)
    if own == "top" or own == "factory":
        return []
    wrong = []
    for line, target, names in imported(path, name):
        layer = layer_of(target)
        # `from fakeproc import create_app` names the factory; `from . import x` a module
        if layer == "factory" and names and all(
                (PACKAGE / name).with_suffix(".py").exists() or (PACKAGE / name).is_dir()
                for name in names):
            layer = {layer_of(f"fakeproc.{name}") for name in names}.pop()
        allowed = {own, "leaf"} | MAY_IMPORT.get(own, set())
        if own == "leaf":
            allowed = {"leaf"}
        if layer == "processor" and "processor:exports" in allowed:
            if target == "fakeproc.processor":
                continue
            wrong.append(f"line {line}: {target} (Twilio's side takes only what "
                         "fakeproc.processor exports)")
            continue
        if layer not in allowed:
            wrong.append(f"line {line}: {target} ({own} may not import {layer})")
    return wrong


def test_imports_run_one_way() -> None:
    wrong = {module_name(path): found for path in modules() if (found := refusals(path))}
    assert wrong == {}


def test_the_check_sees_an_import_that_runs_back_up(tmp_path: Path) -> None:
    """The check can fail: a store module importing the processor is refused, and Twilio's
    side reaching inside the processor."""
    store = tmp_path / "probe.py"
    store.write_text("from ..processor.wire import parse\nfrom . import models\n")
    assert refusals(store, "fakeproc.store.probe") == [
        "line 1: fakeproc.processor.wire (store may not import processor)"]
    twilio = tmp_path / "client.py"
    twilio.write_text("from ..processor import mask\nfrom ..processor.cards import mask\n")
    assert refusals(twilio, "fakeproc.twilio.client") == [
        "line 2: fakeproc.processor.cards (Twilio's side takes only what fakeproc.processor "
        "exports)"]


def test_no_module_is_longer_than_300_lines() -> None:
    lengths = {module_name(path): len(path.read_text().splitlines()) for path in modules()}
    assert {name: lines for name, lines in lengths.items() if lines > MAX_LINES} == {}
    assert len(lengths) > 40


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_each_layer_says_what_lives_there_and_what_it_may_import(layer: str) -> None:
    doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text())) or ""
    assert len(doc) > 200 and "import" in doc, doc


def test_the_architecture_document_names_files_that_exist() -> None:
    text = ARCHITECTURE.read_text()
    named = set(re.findall(r"`(fakeproc/[\w/]+(?:\.py)?)`", text))
    assert len(named) > 20
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert missing == []
    for layer in LAYERS:
        assert f"`fakeproc/{layer}/`" in text
