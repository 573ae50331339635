"""environment.yml, Dockerfile, Makefile and .ci/run can't be built or run here (no conda, no docker engine):
keep them honest by checking they name the same dependencies and commands as pyproject.toml."""
from __future__ import annotations

import importlib.metadata
import re
import shlex
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 has no tomllib
    tomllib = pytest.importorskip("tomli")
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
TORCH_PINS = {"torch": "==2.14.1", "torchvision": "==0.29.1"}  # constraints.txt, the test environment


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _reqs(lines) -> dict[str, str]:
    """{canonical name: specifier string (sorted, comparable)} of requirement strings."""
    out = {}
    for line in lines:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name not in out, f"{name} listed twice"
        out[name] = str(SpecifierSet(str(req.specifier)))
    return out


def _environment() -> dict:
    return yaml.safe_load((REPO / "environment.yml").read_text())


def test_environment_yml_matches_pyproject(pyproject):
    env = _environment()
    deps = env["dependencies"]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml needs one pip: section"
    pip_lines = [line for line in pip_sections[0] if not line.startswith("-")]  # '-e .' installs scarlab itself
    assert "-e ." in pip_sections[0] and "-c constraints.txt" in pip_sections[0]
    project = pyproject["project"]
    expected = _reqs(project["dependencies"] + project["optional-dependencies"]["dev"])
    assert _reqs(pip_lines) == expected


def _constraints() -> tuple[dict[str, str], dict[str, Requirement]]:
    """constraints.txt as ({name: specifier} of the lines without a marker, {name: Requirement} of those with one)."""
    lines = [ln.strip() for ln in (REPO / "constraints.txt").read_text().splitlines()]
    reqs = [Requirement(ln) for ln in lines if ln and not ln.startswith("#")]
    names = [canonicalize_name(r.name) for r in reqs]
    assert len(names) == len(set(names)), "a package pinned twice in constraints.txt"
    plain = _reqs([str(r) for r in reqs if r.marker is None])
    return plain, {canonicalize_name(r.name): r for r in reqs if r.marker is not None}


def test_torch_is_pinned_in_constraints_not_in_the_package(pyproject):
    assert _constraints()[0] == TORCH_PINS
    deps = _reqs(pyproject["project"]["dependencies"])
    for name, pin in TORCH_PINS.items():
        assert not deps[name].startswith("=="), f"{name} must not be pinned with == in the package's dependencies"
        assert Version(pin.lstrip("=")) in SpecifierSet(deps[name]), f"{name}{pin} must satisfy the package's range"


def test_constraints_pin_every_dependency_for_the_tested_python(pyproject):
    """Each dependency (and the dev extra) at one exact version inside the package's own range, for Python 3.11."""
    locked = _constraints()[1]
    project = pyproject["project"]
    for name, spec in _reqs(project["dependencies"] + project["optional-dependencies"]["dev"]).items():
        if name in TORCH_PINS:
            continue
        assert name in locked, f"constraints.txt does not pin {name}: run make lock, then make test"
        [pin] = locked[name].specifier
        assert pin.operator == "==", f"{locked[name]}: constraints.txt pins exact versions"
        assert Version(pin.version) in SpecifierSet(spec), f"{locked[name]} is outside pyproject's {name}{spec}"
    assert {str(r.marker) for r in locked.values()} == {'python_version == "3.11"'}
    python = re.search(r"python=(\d+\.\d+)", (REPO / "environment.yml").read_text()).group(1)
    assert python == "3.11" and "python:3.11" in (REPO / "Dockerfile").read_text()  # where the pins apply


def test_this_environment_is_the_pinned_one():
    """The thresholds in the tests were set in the pinned environment: say so when this one differs from it."""
    locked = {name: r for name, r in _constraints()[1].items() if r.marker.evaluate()}
    if not locked:
        pytest.skip(f"constraints.txt pins nothing for Python {sys.version_info[0]}.{sys.version_info[1]}")
    off = []
    for name, req in locked.items():
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # pinned but not installed here (pip installs what this platform needs)
        if Version(have) not in req.specifier:
            off.append(f"{name} {have} (pinned {req.specifier})")
    assert not off, "this environment is not the one constraints.txt pins: " + ", ".join(off) + \
        " — make setup reinstalls it (delete .venv if that changes nothing)"


def test_environment_python_satisfies_requires_python(pyproject):
    conda = [d for d in _environment()["dependencies"] if isinstance(d, str)]
    pythons = [d for d in conda if re.match(r"python\s*[=<>]", d)]
    assert len(pythons) == 1, conda
    version = re.sub(r"^python\s*=*", "", pythons[0]).strip()
    requires = SpecifierSet(pyproject["project"]["requires-python"])
    assert Version(version) in requires, (version, str(requires))
    assert "pip" in conda


def _pip_installs(text: str) -> list[list[str]]:
    """The arguments of every `pip install` in a Dockerfile / Makefile (line continuations joined)."""
    text = text.replace("\\\n", " ")
    out = []
    for m in re.finditer(r"pip install (.+)", text):
        args = [a for a in shlex.split(m.group(1)) if not a.startswith("$(")]
        out.append([a for a in args if not a.startswith("--")])
    return out


def _makefile_installs() -> list[list[str]]:
    """The `pip install`s of the Makefile's setup recipe (the one `make demo` and `make test` run)."""
    text = (REPO / "Makefile").read_text()
    variables = dict(re.findall(r"^(\w+)\s*:?=\s*(.+)$", text, flags=re.M))
    recipe = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", text, flags=re.M).group(1)
    recipe = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), recipe)
    return _pip_installs(recipe)


def test_makefile_installs_pinned_torch_then_package():
    installs = _makefile_installs()
    assert installs == [["-c", "constraints.txt", "-e", ".[dev]"]]
    text = (REPO / "Makefile").read_text()
    assert re.search(r"^test:.*\n\t.*-m pytest -q", text, flags=re.M)
    assert re.search(r"^demo:.*\n\t.*scarlab demo", text, flags=re.M)
    assert "-m venv" in text and "pyproject.toml constraints.txt" in text  # setup redone when either changes


def test_dockerfile_installs_like_the_makefile():
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE=python:3\.\d+-slim$", text, flags=re.M)
    assert re.search(r"^FROM \$\{?BASE\}?", text, flags=re.M)
    assert "--build-arg BASE=" in text and "cuda" in text.lower()  # the GPU variant is documented
    assert _pip_installs(text) == _makefile_installs()
    makefile = (REPO / "Makefile").read_text()
    for step in ("-m compileall -q scarlab dashboard", "-c 'import umap'"):  # bytecode, numba's cache: at install
        assert f"python {step}" in text and f"$(PY) {step}" in makefile, step
    cmd = re.search(r"^CMD (.+)$", text, flags=re.M)
    assert cmd and "demo" in cmd.group(1)
    code = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    if "0.0.0.0" in code:  # listening on every interface only with the reason and a loopback-only -p documented
        assert "127.0.0.1:8501:8501" in text and "unreachable" in text


def test_ci_runs_the_readme_test_command():
    text = (REPO / ".ci" / "run").read_text()
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    assert re.search(r"^make test", text, flags=re.M)
    assert "SCARLAB_REQUIRE_SHARED_DATA=1" in text and "shared/data" in text
    assert "chromium chromium-driver" in text
    assert (REPO / ".ci" / "run").stat().st_mode & 0o111, ".ci/run must be executable"
