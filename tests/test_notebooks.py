"""The stage notebooks and the teaching notebook.

They are edited as notebooks (JupyterLab, or their paired ``.py`` in jupytext's percent format): every ``.ipynb``
has a ``.py`` twin holding the same cells, and both are committed without outputs. Each stage notebook's cell
tagged ``parameters`` holds the fields of scarlab's configuration dataclasses as documented literals (the
names the pipeline passes), and each notebook executes through papermill on digits with tiny parameters
(chained: original -> split -> retrained -> unlearn -> evaluate -> compare). Executed figures are plotly's JSON
(JupyterLab draws it) without plotly.js, and a note in text/html; ``scarlab export`` draws them in HTML offline.
"""
from __future__ import annotations

import ast
import dataclasses
import importlib.util
import io
import json
import os
import re
import shutil
import time
import tokenize
from pathlib import Path

import jupytext
import nbformat
import papermill
import pytest
from jupytext.cli import jupytext as jupytext_cli

import scarlab.config
from scarlab.config import AuditConfig, TrainConfig, UnlearnConfig
from scarlab.notebook import NO_PLOTLY_NOTE, PLOTLY_MIME as PLOTLY
from scarlab.runs import RunDir

from conftest import run_nb

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
STAGES = sorted(NOTEBOOKS.glob("0*.ipynb"))
ALL = STAGES + sorted((NOTEBOOKS / "explore").glob("*.ipynb"))
FORMATS = "ipynb,py:percent"
NO_VERSION = "-jupytext.text_representation.jupytext_version"
HAS_EVALUATE = importlib.util.find_spec("scarlab.evaluate") is not None
needs_evaluate = pytest.mark.skipif(not HAS_EVALUATE, reason="scarlab.evaluate (evaluation issue) is not installed")

# The parameters each stage notebook takes, with their defaults: the names the pipeline passes. Names that are
# fields of the stage's configuration dataclass must keep its default (checked below), except where noted.
CONTRACT = {
    "01_train_original": dict(dataset="digits", data_root=None, model=None, recipe="lab", epochs=None,
                              batch_size=None, lr=None, optimizer=None, augment=True, label_smoothing=None,
                              whiten=None, channels_last=None, bf16=None, seed=0, device="auto",
                              out_dir="runs/notebooks/original", overwrite=False),
    "02_split": dict(dataset="digits", data_root=None, scenario="CR", forget_classes=[0], forget_size=None, seed=0,
                     out_dir="runs/notebooks/split", overwrite=False),
    "03_train_retrained": dict(dataset="digits", data_root=None, model=None, split=None, scenario="CR",
                               forget_classes=[0], forget_size=None, recipe="lab", epochs=None, batch_size=None,
                               lr=None, optimizer=None, augment=True, label_smoothing=None, whiten=None,
                               channels_last=None, bf16=None, seed=0, device="auto",
                               out_dir="runs/notebooks/retrained", overwrite=False),
    "04_unlearn": dict(original=None, retrained=None, split=None, method="scar", params={}, seed=0, surrogate="auto",
                       surrogate_chunks=None, surrogate_size=2000, snapshot_every=5, retain_available=True,
                       device="auto", out_dir="runs/notebooks/unlearn", overwrite=False),
    "05_evaluate": dict(run=None, original=None, retrained=None, split=None, out_dir=None, embed=False, device="auto"),
    "06_shadows": dict(run=None, original=None, split=None, shadows=8, seed=1000, shadow_dir=None, populations=None,
                       device="auto", members_file=None, jobs=1),
    "07_audit": dict(run=None, shadows=8, seed=1000, shadow_dir=None, delta=1e-5, alpha=0.05, device="auto"),
    "07_audit_offline": dict(run=None, shadows=8, seed=1000, shadow_dir=None, alpha=0.05, device="auto", rmia_a=None,
                             population=1000),
    "08_compare": dict(runs=[], out_dir="runs/notebooks"),
}
CONFIGS = {"01_train_original": TrainConfig, "02_split": getattr(scarlab.config, "SplitConfig", None),
           "03_train_retrained": TrainConfig, "04_unlearn": UnlearnConfig, "07_audit": AuditConfig,
           "07_audit_offline": AuditConfig}
# deliberate differences from the dataclass defaults: a runnable CR example, and "unset" instead of ""
NOT_DATACLASS_DEFAULT = {"forget_classes", "original"}


def _params_cell(path: Path):
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name}: expected exactly one cell tagged 'parameters', found {len(cells)}"
    return nb, cells[0]


def parameters(path: Path) -> dict:
    """{name: default} of a notebook's parameters cell, checking that each line is one documented literal."""
    _, cell = _params_cell(path)
    tree = ast.parse(cell.source)
    comments = {tok.start[0] for tok in tokenize.generate_tokens(io.StringIO(cell.source).readline)
                if tok.type == tokenize.COMMENT}
    found = {}
    for node in tree.body:
        assert isinstance(node, (ast.Assign, ast.AnnAssign)), f"{path.name}: line {node.lineno} is not an assignment"
        target = node.targets[0] if isinstance(node, ast.Assign) else node.target
        assert isinstance(target, ast.Name), f"{path.name}: line {node.lineno} assigns to something other than a name"
        value = ast.literal_eval(node.value)  # raises on anything derived (names, calls, arithmetic)
        assert value is None or isinstance(value, (str, int, float, bool, list, dict)), \
            f"{path.name}: {target.id} = {value!r} is not None, a string, a number, a bool, a list or a dict"
        assert node.lineno == node.end_lineno and node.lineno in comments, \
            f"{path.name}: parameter {target.id} needs a trailing comment on its line"
        assert target.id not in found, f"{path.name}: {target.id} is assigned twice"
        found[target.id] = value
    assert found, f"{path.name}: the parameters cell is empty"
    return found


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_every_stage_has_a_notebook():
    from scarlab.pipeline import STAGE_NOTEBOOKS

    assert sorted(p.name for p in STAGES) == sorted(STAGE_NOTEBOOKS.values())
    assert sorted(p.stem for p in STAGES) == sorted(CONTRACT)
    assert not (NOTEBOOKS / "build.py").exists(), "the notebooks are the source now: no generator script"


# ----------------------------------------------------------------------------------- jupytext pairs
def test_every_py_has_its_notebook():
    for py in [*NOTEBOOKS.glob("*.py"), *NOTEBOOKS.glob("explore/*.py")]:
        assert py.with_suffix(".ipynb").is_file(), f"{py.relative_to(NOTEBOOKS)} has no paired .ipynb"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_notebook_and_py_are_a_synced_pair(path):
    py = path.with_suffix(".py")
    assert py.is_file(), f"{path.name}: missing its pair {py.name} (jupytext --set-formats {FORMATS} {path.name})"
    nb, text = jupytext.read(path), jupytext.read(py)
    assert nb.metadata.get("jupytext", {}).get("formats") == FORMATS, f"{path.name}: not paired with {FORMATS}"
    assert text.metadata.get("jupytext", {}).get("formats") == FORMATS, f"{py.name}: not paired with {FORMATS}"
    assert text.metadata["jupytext"]["text_representation"]["format_name"] == "percent"
    # without it each jupytext release rewrites the .py headers (jupytext_version: ...), a diff in every pair
    assert nb.metadata["jupytext"].get("notebook_metadata_filter") == NO_VERSION, \
        f"{path.name}: set jupytext's notebook_metadata_filter to {NO_VERSION} (as the other notebooks)"

    def cells(n):
        return [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in n.cells]

    assert cells(nb) == cells(text), f"{path.name} and {py.name} differ: run jupytext --sync on the one you edited"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for c in code_cells(nb):
        assert not c.outputs and c.execution_count is None, \
            f"{path.name}: commit notebooks without outputs (jupyter nbconvert --clear-output --inplace {path.name})"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_editing_the_py_and_syncing_gives_the_same_notebook(path, tmp_path):
    """`jupytext --sync` after an edit of the .py: the committed pair is stable, and an edit changes only its cell."""
    ipynb, py = tmp_path / path.name, tmp_path / path.with_suffix(".py").name
    shutil.copy(path, ipynb)
    shutil.copy(path.with_suffix(".py"), py)
    later = ipynb.stat().st_mtime + 10
    os.utime(py, (later, later))  # the .py is the one edited
    assert jupytext_cli(["--sync", "--quiet", str(py)]) == 0
    assert ipynb.read_text() == path.read_text(), f"{path.name}: syncing its unchanged .py rewrites the notebook"
    assert py.read_text() == path.with_suffix(".py").read_text()

    before = nbformat.read(path, as_version=4)
    title = next(c for c in before.cells if c.cell_type == "markdown").source.splitlines()[0]
    py.write_text(py.read_text().replace(f"# {title}\n", f"# {title} (edited)\n", 1))
    os.utime(py, (later + 10, later + 10))
    assert jupytext_cli(["--sync", "--quiet", str(py)]) == 0
    after = nbformat.read(ipynb, as_version=4)
    assert after.metadata == before.metadata and len(after.cells) == len(before.cells)
    changed = [(a, b) for a, b in zip(before.cells, after.cells) if a != b]
    assert len(changed) == 1, f"{path.name}: editing one line of the .py changed {len(changed)} cells"
    old, new = changed[0]
    assert new.source == old.source.replace(title, f"{title} (edited)", 1) and new.id == old.id


# ----------------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_parameters_are_documented_literals(path):
    names = list(parameters(path))
    # papermill --help-notebook documents every parameter (it skips a line with a second '=', even in a comment)
    inspected = papermill.inspect_notebook(str(path))  # {name: {name, inferred_type_name, default, help}}
    assert list(inspected) == names
    assert all(p["help"] for p in inspected.values()), f"{path.name}: a parameter has no help for --help-notebook"


@pytest.mark.parametrize("path", STAGES, ids=lambda p: p.name)
def test_stage_parameters_are_the_pipeline_contract(path):
    found = parameters(path)
    assert found == CONTRACT[path.stem], f"{path.name}: parameters differ from the contract the pipeline relies on"
    cls = CONFIGS.get(path.stem)
    if cls is not None:
        defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                    for f in dataclasses.fields(cls)}
        for name, value in found.items():
            if name in defaults and name not in NOT_DATACLASS_DEFAULT:
                assert value == defaults[name], f"{path.name}: {name} = {value!r}, but {cls.__name__} has " \
                                                f"{defaults[name]!r}"


def test_notebooks_share_one_setup():
    """The setup cell (the one after the parameters) calls scarlab.notebook.setup_notebook, the one place that
    chooses the renderer, the thread count and the figure size, and takes FIG from there."""
    for path in ALL:
        nb = nbformat.read(path, as_version=4)
        cells = code_cells(nb)
        i = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
        src = cells[i + 1].source
        assert "from scarlab.notebook import FIG, setup_notebook" in src and "\nsetup_notebook()" in src, path.name
        assert "pio.renderers" not in src and "set_num_threads" not in src, f"{path.name}: setup written again"


# ----------------------------------------------------------------------------------- execution, chained
@pytest.fixture(scope="module")
def nbdir(tmp_path_factory):
    return tmp_path_factory.mktemp("notebooks")


def execute(warm, name: str, out: Path, **params) -> dict:
    """Execute a notebook with papermill (a kernel of this interpreter, forked as a pipeline stage's is); returns
    the executed notebook."""
    t0 = time.perf_counter()
    run_nb(warm, name, out, **params)
    print(f"{name}: {time.perf_counter() - t0:.1f}s, {out.stat().st_size / 1e6:.1f} MB executed")
    return json.loads(out.read_text())


def plot_count(nb: dict) -> int:
    """Figures in an executed notebook; each carries the note for viewers without plotly besides the plotly JSON,
    and no output carries plotly.js (the notebook stays KBs)."""
    figures = [o["data"] for c in nb["cells"] for o in c.get("outputs", []) if PLOTLY in o.get("data", {})]
    assert all("".join(d.get("text/html", "")) == NO_PLOTLY_NOTE for d in figures), "a figure without the note"
    assert plotlyjs_copies(nb) == 0, "plotly.js stored in the notebook"
    return len(figures)


def plotlyjs_copies(nb: dict) -> int:
    """How many outputs embed plotly.js itself (its licence banner opens the bundle)."""
    return sum(1 for c in nb["cells"] for o in c.get("outputs", [])
               if "* plotly.js v" in "".join(o.get("data", {}).get("text/html", "")))


@pytest.fixture(scope="module")
def original(nbdir, warm_kernels):
    run = nbdir / "original"
    nb = execute(warm_kernels, "01_train_original.ipynb", nbdir / "01.ipynb", dataset="digits", epochs=2, device="cpu",
                 out_dir=str(run))
    assert plot_count(nb) == 2
    return run


@pytest.fixture(scope="module")
def split(nbdir, warm_kernels):
    run = nbdir / "split"
    nb = execute(warm_kernels, "02_split.ipynb", nbdir / "02.ipynb", dataset="digits", scenario="CR",
                 forget_classes=[0], out_dir=str(run))
    assert plot_count(nb) == 2
    return run


@pytest.fixture(scope="module")
def retrained(nbdir, split, warm_kernels):
    run = nbdir / "retrained"
    nb = execute(warm_kernels, "03_train_retrained.ipynb", nbdir / "03.ipynb", dataset="digits", split=str(split),
                 epochs=2, device="cpu", out_dir=str(run))
    assert plot_count(nb) == 2
    return run


@pytest.fixture(scope="module")
def unlearned(nbdir, original, split, retrained, warm_kernels):
    run = nbdir / "scar"
    nb = execute(warm_kernels, "04_unlearn.ipynb", nbdir / "04.ipynb", original=str(original), retrained=str(retrained),
                 split=str(split), method="scar", params={"epochs": 2}, device="cpu", out_dir=str(run))
    assert plot_count(nb) == 3  # losses, accuracies, distances
    return run


def test_01_train_original(original):
    run = RunDir(original)
    assert run.status == "complete" and run.file("stats.npz").is_file()
    assert run.config["epochs"] == 2 and run.config["model"] == "tinycnn"  # None: the data set's default


def test_02_split(split):
    run = RunDir(split)
    assert run.status == "complete" and run.config["forget_classes"] == [0]
    assert run.file("split.npz").is_file()


def test_02_split_exports_to_html_with_plotlyjs_once(nbdir, split):
    """One executed notebook: KBs without plotly.js; `scarlab export` inlines plotly.js once and draws both
    figures, with nothing from a CDN; plain `jupyter nbconvert --to html` shows the note in their place."""
    from nbconvert import HTMLExporter

    from scarlab.cli import main

    executed = nbdir / "02.ipynb"
    nb = json.loads(executed.read_text())
    print(f"02_split executed: {executed.stat().st_size / 1e6:.2f} MB")
    assert executed.stat().st_size < 500_000
    assert main(["export", str(executed)]) == 0
    html = executed.with_suffix(".html").read_text()
    assert html.count("Plotly.newPlot(") == plot_count(nb) == 2
    assert html.count('class="plotly-graph-div"') == 2
    assert html.count("* plotly.js v") == 1  # inline, not from a CDN
    assert not re.search(r"<script[^>]*\bsrc=", html), "a script loaded from elsewhere (require.js, MathJax)"
    plain, _ = HTMLExporter().from_filename(str(executed))
    assert plain.count(NO_PLOTLY_NOTE) == 2 and "* plotly.js v" not in plain


def test_03_train_retrained(retrained):
    run = RunDir(retrained)
    assert run.status == "complete" and run.config["role"] == "retrained"
    assert run.metrics["acc/forget_test"] == 0.0  # never saw class 0


def test_04_unlearn(unlearned):
    run = RunDir(unlearned)
    assert run.status == "complete" and run.config["method"] == "scar"
    assert run.config["params"]["epochs"] == 2
    assert list((run.path / "features").glob("step_*.npz"))


def test_04_unlearn_rejects_unknown_hyper_parameter(nbdir, original, split, warm_kernels):
    with pytest.raises(papermill.PapermillExecutionError) as err:
        execute(warm_kernels, "04_unlearn.ipynb", nbdir / "04_bad.ipynb", original=str(original), split=str(split),
                method="scar", params={"lamda_2": 5}, device="cpu", out_dir=str(nbdir / "bad"))
    assert "lamda_2" in err.value.evalue and "lambda_2" in err.value.evalue
    assert not (nbdir / "bad").exists()


@needs_evaluate
def test_05_evaluate_and_08_compare(nbdir, original, split, retrained, unlearned, warm_kernels):
    embed = importlib.util.find_spec("scarlab.embed") is not None  # the dashboard issue's UMAP embedding
    nb = execute(warm_kernels, "05_evaluate.ipynb", nbdir / "05a.ipynb", run=str(unlearned), original=str(original),
                 retrained=str(retrained), embed=embed, device="cpu")
    assert plot_count(nb) >= 1 + embed and "acc/forget_test" in RunDir(unlearned).metrics
    assert (Path(unlearned) / "embedding.parquet").is_file() == embed
    execute(warm_kernels, "05_evaluate.ipynb", nbdir / "05b.ipynb", run=str(original), retrained=str(retrained),
            split=str(split), out_dir=str(nbdir / "original_eval"), device="cpu")
    assert RunDir(nbdir / "original_eval").status == "complete"
    execute(warm_kernels, "05_evaluate.ipynb", nbdir / "05c.ipynb", run=str(retrained), original=str(original),
            device="cpu")
    nb = execute(warm_kernels, "08_compare.ipynb", nbdir / "08.ipynb", out_dir=str(nbdir),
                 runs=[str(nbdir / "original_eval"), str(retrained), str(unlearned)])
    assert plot_count(nb) >= 1
    import pandas as pd

    df = pd.read_csv(nbdir / "summary.csv")
    assert set(df["method"]) == {"original", "retrained", "scar"}
    assert {"forget_classes", "seed"} <= set(df.columns)


def test_explore_how_scar_forgets(tmp_path, warm_kernels):
    t0 = time.perf_counter()
    nb = execute(warm_kernels, "explore/how_scar_forgets.ipynb", tmp_path / "explore.ipynb")
    seconds = time.perf_counter() - t0
    print(f"how_scar_forgets.ipynb executed in {seconds:.1f}s")
    assert plot_count(nb) >= 9  # and no plotly.js stored
    assert seconds < 180  # ~30 s on an idle 2-core CPU; generous for a loaded CI machine
