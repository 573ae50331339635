"""The import graph of scarlab/ and dashboard/: no circle, and every import goes down the floors that
docs/architecture.md declares (its ```floors blocks are the one table; this test only reads them).

Every ``import`` counts, at module level or inside a function. Importing ``a.b.c`` also runs the packages ``a.b``
and ``a`` (their ``__init__``), so an import from outside a package is an edge to that package too: that is how
``schedule -> pipeline -> pipeline.run -> schedule`` was a circle although each line imported a submodule."""
from __future__ import annotations

import ast
import graphlib
import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
FOLDERS = {"scarlab": REPO / "scarlab",  # import name -> folder, as pyproject's package-dir maps them
           **{k: REPO / v for k, v in PYPROJECT["tool"]["setuptools"]["package-dir"].items() if "." not in k}}


def _floors() -> tuple[dict[str, dict[str, int]], dict[str, str]]:
    """({package: {top-level name: floor}}, {package: the scarlab module it stands on}) from docs/architecture.md."""
    floors, on = {}, {}
    blocks = re.findall(r"^```floors (\w+)(?: on (\w+))?\n(.*?)^```", DOC.read_text(), re.M | re.S)
    for package, stands_on, body in blocks:
        floors[package] = {name: i for i, line in enumerate(body.split("\n")) for name in line.split()}
        if stands_on:
            on[package] = stands_on
    return floors, on


FLOORS, STANDS_ON = _floors()


def _modules() -> dict[str, Path]:
    """{dotted module name: file} of every module of the packages the floors declare."""
    out = {}
    for package in FLOORS:
        for f in sorted(FOLDERS[package].rglob("*.py")):
            parts = list(f.relative_to(FOLDERS[package]).with_suffix("").parts)
            out[".".join([package] + parts[:-1] + ([] if parts[-1] == "__init__" else parts[-1:]))] = f
    return out


MODULES = _modules()


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules of ours that ``node`` (in ``module``) names: ``from X import y`` is X.y when that is a module."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
        base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def _graph() -> dict[str, set[str]]:
    """{module: the modules of ours it imports}, parent packages it runs included (see the module docstring)."""
    graph = {}
    for module, f in MODULES.items():
        edges = set()
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _imported(module, node):
                    parts = target.split(".")
                    for i in range(1, len(parts) + 1):
                        name = ".".join(parts[:i])
                        inside = module == name or module.startswith(name + ".")  # its own package: already running
                        if name in MODULES and name != module and (i == len(parts) or not inside):
                            edges.add(name)
        graph[module] = edges
    return graph


GRAPH = _graph()


def _floor(module: str) -> tuple[str, int]:
    package, _, rest = module.partition(".")
    return package, FLOORS[package][rest.split(".")[0] or "__init__"]


def test_the_floors_place_every_module_and_name_no_missing_one():
    top = {p for p in PYPROJECT["tool"]["setuptools"]["packages"] if "." not in p}
    assert set(FLOORS) == top, f"docs/architecture.md has floors for {sorted(FLOORS)}; pyproject ships {sorted(top)}"
    for package, names in FLOORS.items():
        present = {m.partition(".")[2].split(".")[0] or "__init__" for m in MODULES if m.partition(".")[0] == package}
        assert not present - set(names), f"docs/architecture.md places no floor for {package}: {present - set(names)}"
        assert not set(names) - present, f"docs/architecture.md names modules {package} lacks: {set(names) - present}"
    assert set(STANDS_ON.values()) <= set(FLOORS["scarlab"])


def test_no_import_circle():
    try:
        graphlib.TopologicalSorter(GRAPH).prepare()
    except graphlib.CycleError as e:
        pytest.fail("import circle: " + " -> ".join(reversed(e.args[1])))


def test_every_import_goes_down_the_floors():
    climbing = []
    for module, targets in GRAPH.items():
        package, floor = _floor(module)
        for target in targets:
            tpackage, tfloor = _floor(target)
            if tpackage == package:
                ok = tfloor <= floor
            else:  # across packages: only an app standing on a floor of scarlab, up to that floor
                ok = STANDS_ON.get(package) is not None and tpackage == "scarlab" and tfloor <= _floor(
                    f"scarlab.{STANDS_ON[package]}")[1]
            if not ok:
                climbing.append(f"{module} imports {target}")
    assert not climbing, "imports that climb the floors of docs/architecture.md:\n" + "\n".join(sorted(climbing))


def test_pyproject_ships_every_package():
    """packages.find cannot discover the remapped dashboard folder, so pyproject lists packages by hand: every
    folder of modules must be in that list (else a wheel would lack it)."""
    folders = {".".join(m.split(".")[:-1]) if f.name != "__init__.py" else m for m, f in MODULES.items()}
    assert folders <= set(PYPROJECT["tool"]["setuptools"]["packages"])
