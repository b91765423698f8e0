"""The kit's own imports, read with `ast` (nothing is imported): no cycles, and the layering of DESIGN.md.

Every `import` and `from ... import` in every .py file of the kit's packages counts, at module level and
inside functions, classes, `try` blocks alike (a function-level import is a dependency all the same; it
only hides a cycle until the function runs). `from pkg import name` is an import of `pkg.name` when that
is a module of the kit, else of `pkg` (its `__init__.py`); relative imports are resolved. The implicit
import of a parent package's `__init__.py` is not counted as an edge.

Layering (DESIGN.md, "Layout and who may import whom"):

    edge/         no tensorflow, keras, tf2onnx, onnx, torch, timm; no kit package but edge
    calibration/  no tensorflow, keras; kit packages calibration and edge only
    models/       kit packages models and edge only
    converters/   kit packages converters, models, calibration, edge
    training/     any kit package but regnety_kit (the installed command sits above everything)
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KIT_PACKAGES = ("models", "converters", "calibration", "edge", "training", "regnety_kit")


@dataclass(frozen=True)
class Import:
    source: str        # the importing module, e.g. "converters.tflite"
    target: str        # the imported top-level package or kit module, e.g. "converters.selective", "keras"
    file: Path
    line: int
    kit: bool          # whether target is a module of the kit

    def where(self, root: Path) -> str:
        return f"{self.file.relative_to(root)}:{self.line}"


def kit_modules(root: Path) -> dict[str, Path]:
    """Module name -> file, for every .py file of the kit's packages (packages by their __init__.py)."""
    modules = {}
    for package in KIT_PACKAGES:
        if not (root / package / "__init__.py").is_file():
            continue
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str:
    """The longest prefix of a dotted kit name that is a kit module (a missing submodule: its package)."""
    parts = name.split(".")
    while len(parts) > 1 and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts)


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def add(name: str, line: int) -> None:
        top = name.split(".")[0]
        if top in KIT_PACKAGES:
            found.append(Import(module, _resolve(name, modules), path, line, True))
        else:
            found.append(Import(module, top, path, line, False))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            if origin.split(".")[0] not in KIT_PACKAGES:
                add(origin, node.lineno)
                continue
            for alias in node.names:
                submodule = f"{origin}.{alias.name}"
                add(submodule if submodule in modules else origin, node.lineno)
    return found


def all_imports(root: Path) -> list[Import]:
    modules = kit_modules(root)
    return [imp for module, path in modules.items() for imp in imports_of(module, path, modules)]


def cycles(imports: list[Import]) -> list[list[str]]:
    """Strongly connected components of the kit-module graph with more than one module, or a self-import
    (Tarjan's algorithm), each sorted, in a stable order."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.kit:
            graph.setdefault(imp.source, set()).add(imp.target)
            graph.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def _listing(imports: list[Import], root: Path) -> list[str]:
    """One line per importing statement (`from x import a, b` is one), in file order."""
    return list(dict.fromkeys(f"    {imp.where(root)}: {imp.source} imports {imp.target}"
                              for imp in sorted(imports, key=lambda i: (i.source, i.line, i.target))))


def describe_cycles(imports: list[Import], root: Path) -> str:
    """Each cycle's modules, then the imports that close it (file:line)."""
    lines = []
    for component in cycles(imports):
        members = set(component)
        lines.append("cycle: " + " <-> ".join(component))
        lines += _listing([i for i in imports if i.kit and i.source in members and i.target in members], root)
    return "\n".join(lines)


@dataclass(frozen=True)
class Rule:
    package: str
    kit_allowed: frozenset[str] | None = None   # kit packages it may import (None: no rule)
    forbidden: frozenset[str] = frozenset()     # third-party top-level packages it may not import

    def breaches(self, imports: list[Import]) -> list[Import]:
        bad = []
        for imp in imports:
            if imp.source.split(".")[0] != self.package:
                continue
            top = imp.target.split(".")[0]
            if imp.kit and self.kit_allowed is not None and top not in self.kit_allowed:
                bad.append(imp)
            elif not imp.kit and top in self.forbidden:
                bad.append(imp)
        return bad


ML = frozenset({"tensorflow", "keras", "tf2onnx", "onnx", "torch", "timm"})
RULES = {
    "edge imports no ML framework": Rule("edge", forbidden=ML),
    "edge imports no other kit package": Rule("edge", kit_allowed=frozenset({"edge"})),
    "calibration imports no tensorflow or keras": Rule("calibration", forbidden=frozenset({"tensorflow", "keras"})),
    "calibration imports only calibration and edge": Rule("calibration", kit_allowed=frozenset({"calibration", "edge"})),
    "models imports only models and edge": Rule("models", kit_allowed=frozenset({"models", "edge"})),
    "converters imports only converters, models, calibration, edge": Rule(
        "converters", kit_allowed=frozenset({"converters", "models", "calibration", "edge"})),
    "training imports no regnety_kit": Rule(
        "training", kit_allowed=frozenset({"training", "models", "converters", "calibration", "edge"})),
}


class Imports(list):
    def __repr__(self) -> str:  # pytest prints the fixture's value beside a failure: keep it to one line
        return f"<{len(self)} imports in the kit>"


@pytest.fixture(scope="module")
def imports() -> Imports:
    return Imports(all_imports(ROOT))


def test_the_kit_packages_are_found(imports):
    modules = kit_modules(ROOT)
    assert {"edge", "edge.errors", "models.zoo", "converters.tflite", "calibration"} <= set(modules)
    assert any(imp.kit and imp.source.startswith("converters") for imp in imports)


def test_no_import_cycles(imports):
    assert not cycles(imports), "import cycles among the kit's modules:\n" + describe_cycles(imports, ROOT)


@pytest.mark.parametrize("name", list(RULES))
def test_layering(imports, name):
    bad = RULES[name].breaches(imports)
    assert not bad, f"{name} (DESIGN.md's layout table); breached by:\n" + "\n".join(_listing(bad, ROOT))


def test_the_check_finds_cycles_and_breaches(tmp_path):
    """The check itself, on a made-up tree: a two-module cycle closed inside a function, a relative import,
    `from pkg import module`, and an edge package that imports keras and a converter."""
    files = {
        "edge/__init__.py": "",
        "edge/a.py": "import numpy\n\ndef f():\n    import keras\n    from converters import b\n",
        "converters/__init__.py": "",
        "converters/b.py": "from .c import thing\n",
        "converters/c.py": "def g():\n    from converters import b\n",
        "models/__init__.py": "",
        "models/m.py": "from models import m\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = all_imports(tmp_path)
    assert cycles(found) == [["converters.b", "converters.c"], ["models.m"]]
    assert "converters/c.py:2: converters.c imports converters.b" in describe_cycles(found, tmp_path)
    breaches = {name: [(i.target, i.line) for i in rule.breaches(found)] for name, rule in RULES.items()}
    assert breaches["edge imports no ML framework"] == [("keras", 4)]
    assert breaches["edge imports no other kit package"] == [("converters.b", 5)]
    assert not any(v for k, v in breaches.items() if not k.startswith("edge"))
