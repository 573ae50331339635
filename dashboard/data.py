"""Read-only access to run directories for the dashboard.

What a run *is* (method, variant, label, forget set, data set, model, seed, status) comes from
:func:`scarlab.results.describe` over the manifest and config read here, and the metrics' keys, labels, chance
levels and the mean ± std per result from ``scarlab.results``: the dashboard says what summary.csv says. This module
only adds the safe reading.

Rules this module enforces (the dashboard's pages read through it, never directly):

* Only files under the runs root are read (``--runs DIR`` after ``--`` on the ``streamlit run`` line, or the
  environment variable ``SCARLAB_RUNS``). Every file goes through :func:`checked` before it is opened: its path is
  resolved (symlinks followed) and it is refused unless the result lies inside the resolved runs root *and* is a
  regular file. A symlinked file or folder leading outside the root, a FIFO, socket or device is never opened (a
  FIFO would block the page forever); recorded parent paths outside the root are not followed. :func:`open_checked`
  opens without following a last symlink and without blocking, and re-checks the opened file (same inode, regular,
  still inside the root) so a file swapped between the check and the open is refused too.
* Nothing is unpickled: JSON, CSV, Parquet (pyarrow) and ``.npz`` with ``allow_pickle=False`` only. Run
  folders hold a ``checkpoints/model.pt`` (a pickle-based format): the dashboard never opens it.
* Every loader is cached by (path, modification time, size), so a page rerun costs only ``os.stat`` calls, and a
  file that changes (a running run appending history) is re-read.
* No loader raises on bad input: each returns ``Loaded(value, error)``; pages show ``error`` as a warning.
* Everything read is data, never markup: pages show run-supplied strings as plain text (``common.md`` escapes them
  where Streamlit only offers Markdown).
"""
from __future__ import annotations

import math
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import streamlit as st

from scarlab import results as R
from scarlab.results import RunInfo, describe
from scarlab.runs import GROUPS, MAX_JSON_BYTES, CorruptFile, check_json_size, parse_json

ENV_RUNS = "SCARLAB_RUNS"
EMBED_COLUMNS = ("step", "point", "group", "label", "pred", "x", "y")
SNAPSHOT_KEYS = ("group", "labels", "preds", "index", "targets", "dist_own", "dist_target")
AUDIT_FILES = ("audit.json", "audit.parquet", "audit_scores.npz", "audit_steps.csv",  # scarlab.audit writes them
               "audit_steps.npz", "audit_offline.json", "audit_offline.parquet")
OFFLINE_COLUMNS = ("index", "part", "label", "lira_z", "rmia_score")
AUDIT_COLUMNS = ("index", "label", "target_log_lr", "eps", "example_auc", "flagged@0.01")
AUDIT_SCORE_KEYS = ("scores_a", "scores_b", "target", "index", "labels")


class Loaded(NamedTuple):
    """A loader's answer: ``value`` (None when unreadable) and a one-line ``error`` for the page to show."""

    value: Any
    error: str | None = None


# ----------------------------------------------------------------------------- the runs root
def runs_root(argv: list[str] | None = None) -> Path | None:
    """The runs root from ``--runs DIR`` (script arguments) or ``$SCARLAB_RUNS``; None when neither is set."""
    argv = sys.argv[1:] if argv is None else argv
    value = None
    for i, a in enumerate(argv):
        if a == "--runs" and i + 1 < len(argv):
            value = argv[i + 1]
        elif a.startswith("--runs="):
            value = a.split("=", 1)[1]
    value = value or os.environ.get(ENV_RUNS)
    return Path(value).expanduser().resolve() if value else None


def inside(root: Path, path: str | os.PathLike) -> Path | None:
    """``path`` resolved (symlinks followed) if it lies under ``root``; else None."""
    try:
        p = Path(path)
        p = (p if p.is_absolute() else root / p).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    return p if p == root or p.is_relative_to(root) else None


def _sig(path: Path) -> tuple[str, int, int] | None:
    """(path, mtime, size) for cache keys: ``os.stat`` only (it never opens, so a FIFO cannot block it)."""
    try:
        s = path.stat()
    except OSError:
        return None
    return str(path), s.st_mtime_ns, s.st_size


def _name(root: Path | None, path: Path) -> str:
    """How messages name a file: relative to the root when it is under it, else its last two parts."""
    try:
        if root is not None:
            full = Path(os.path.normpath(path if Path(path).is_absolute() else root / path))
            return full.relative_to(root).as_posix()
    except ValueError:
        pass
    return f"{path.parent.name}/{path.name}"


def _err(path: Path, exc: BaseException) -> str:
    msg = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{path.parent.name}/{path.name}: {type(exc).__name__}{': ' + msg if msg else ''}"


# ----------------------------------------------------------------------------- the one gate every read goes through
class FileSig(NamedTuple):
    """A checked file: its resolved path (inside the root, a regular file) and what ``stat`` said of it."""

    path: str
    mtime: int
    size: int
    dev: int
    ino: int


class Refused(OSError):
    """A file the dashboard will not open (outside the runs root, or not a regular file)."""


def checked(root: Path | None, path: str | os.PathLike) -> Loaded:
    """Whether ``path`` may be read: ``Loaded(FileSig)`` for a regular file whose resolved path lies inside the
    resolved ``root``; ``Loaded(None, None)`` when it does not exist; ``Loaded(None, reason)`` when it is refused
    (a symlink leading outside the root, a FIFO, socket, device or folder, no root at all). Only ``lstat``/``stat``
    and ``readlink`` are called: nothing is opened, so a FIFO cannot block."""
    p = Path(path)
    if root is None:
        return Loaded(None, f"{p.parent.name}/{p.name}: no runs root is set, nothing is read")
    name = _name(root, p)
    try:
        root_real = Path(root).resolve(strict=True)
        real = (p if p.is_absolute() else root / p).resolve(strict=True)
    except FileNotFoundError:
        return Loaded(None, None)
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a name too long, no permission
        return Loaded(None, f"{name}: cannot be resolved ({type(exc).__name__}); not read")
    if not real.is_relative_to(root_real):
        return Loaded(None, f"{name}: leads outside the runs root (a symlink); not read")
    try:
        s = os.lstat(real)  # `real` holds no symlinks: lstat and stat agree, and neither opens the file
    except FileNotFoundError:
        return Loaded(None, None)
    except OSError as exc:
        return Loaded(None, _err(p, exc))
    if not stat.S_ISREG(s.st_mode):
        kind = ("a folder" if stat.S_ISDIR(s.st_mode) else "a FIFO" if stat.S_ISFIFO(s.st_mode) else
                "a socket" if stat.S_ISSOCK(s.st_mode) else "a device" if stat.S_ISCHR(s.st_mode) or
                stat.S_ISBLK(s.st_mode) else "not a regular file")
        return Loaded(None, f"{name}: is {kind}, not a regular file; not read")
    return Loaded(FileSig(str(real), s.st_mtime_ns, s.st_size, s.st_dev, s.st_ino))


def open_checked(root: str | os.PathLike, sig: FileSig):
    """The checked file opened for binary reading (a file object), or :class:`Refused`.

    Opens without following a last symlink (``O_NOFOLLOW``) and without blocking (``O_NONBLOCK``: a FIFO put in
    place after the check opens at once instead of waiting for a writer), then re-checks the open file: a regular
    file, the inode that was checked, and (Linux) an open path still inside the root."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(sig.path, flags)
    try:
        s = os.fstat(fd)
        if not stat.S_ISREG(s.st_mode) or (s.st_dev, s.st_ino) != (sig.dev, sig.ino):
            raise Refused(f"{sig.path} changed between its check and its opening")
        proc = f"/proc/self/fd/{fd}"
        if os.path.islink(proc):
            where = Path(os.readlink(proc))
            if not where.is_relative_to(Path(root).resolve()):
                raise Refused(f"{sig.path} opened outside the runs root")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _refused(root: str, sig: FileSig, exc: BaseException) -> Loaded:
    p = Path(sig.path)
    return Loaded(None, f"{_name(Path(root), p)}: {exc}" if isinstance(exc, Refused) else _err(p, exc))


# ----------------------------------------------------------------------------- cached file readers
@st.cache_data(show_spinner=False, max_entries=2048)
def _json(root: str, sig: FileSig) -> Loaded:
    p = Path(sig.path)
    name = f"{p.parent.name}/{p.name}"
    try:
        check_json_size(sig.size, name)  # before it is opened
        with open_checked(root, sig) as f:
            return Loaded(parse_json(f.read(MAX_JSON_BYTES + 1), name))
    except CorruptFile as exc:
        return Loaded(None, str(exc))
    except OSError as exc:
        return _refused(root, sig, exc)


@st.cache_data(show_spinner=False, max_entries=512)
def _csv(root: str, sig: FileSig) -> Loaded:
    try:
        with open_checked(root, sig) as f:
            return Loaded(pd.read_csv(f))
    except pd.errors.EmptyDataError:
        return Loaded(pd.DataFrame())
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        return _refused(root, sig, exc)


# Parquet tables (embeddings: up to ~10^5 rows) are cached as shared objects, not copies: pages treat them as
# read-only (they filter and .assign, never write in place).
@st.cache_resource(show_spinner=False, max_entries=64)
def _parquet(root: str, sig: FileSig, columns: tuple[str, ...] | None) -> Loaded:
    import pyarrow.parquet as pq

    try:
        with open_checked(root, sig) as f:
            table = pq.read_table(f, columns=list(columns) if columns else None)
        meta = {}
        raw = (table.schema.metadata or {}).get(b"scarlab")
        if raw:
            try:
                meta = parse_json(raw, "scarlab metadata")
            except CorruptFile:
                meta = {}
        return Loaded((table.to_pandas(), meta if isinstance(meta, dict) else {}))
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, KeyError (missing column), ...
        return _refused(root, sig, exc)


@st.cache_data(show_spinner=False, max_entries=1024)
def _npz(root: str, sig: FileSig, keys: tuple[str, ...]) -> Loaded:
    try:
        with open_checked(root, sig) as f, np.load(f, allow_pickle=False) as z:
            return Loaded({k: z[k] for k in keys if k in z.files})
    except Exception as exc:  # BadZipFile, EOFError, ValueError (pickled object arrays), OSError
        return _refused(root, sig, exc)


@st.cache_data(show_spinner=False, max_entries=256)
def _text_tail(root: str, sig: FileSig, limit: int) -> Loaded:
    try:
        with open_checked(root, sig) as f:
            f.seek(max(0, sig.size - 4 * limit))
            return Loaded(f.read(4 * limit).decode("utf-8", errors="replace")[-limit:])
    except OSError as exc:
        return _refused(root, sig, exc)


def _read(reader, path: Path, root: Path | None, *extra) -> Loaded:
    got = checked(root, path)
    return reader(str(root), got.value, *extra) if got.value is not None else got


def read_json(path: Path, root: Path | None) -> Loaded:
    """A JSON object from ``path`` (checked against ``root``): ``Loaded(dict)``, ``Loaded(None, None)`` when the
    file does not exist, else ``Loaded(None, one-line reason)``."""
    return _read(_json, path, root)


def read_csv(path: Path, root: Path | None) -> Loaded:
    return _read(_csv, path, root)


def read_parquet(path: Path, root: Path | None, columns: tuple[str, ...] | None = None) -> Loaded:
    return _read(_parquet, path, root, columns)


def read_npz(path: Path, root: Path | None, keys: tuple[str, ...] = SNAPSHOT_KEYS) -> Loaded:
    return _read(_npz, path, root, tuple(keys))


def read_text_tail(path: Path, root: Path | None, limit: int = 4000) -> Loaded:
    """The last ``limit`` characters of a text file (undecodable bytes replaced)."""
    return _read(_text_tail, path, root, int(limit))


# ----------------------------------------------------------------------------- runs
@dataclass
class Run(RunInfo):
    """One run directory: what :func:`scarlab.results.describe` makes of its manifest and config (stage, status,
    method, variant, ``label``, data set, model, forget set, seed: the meaning every summary uses), plus what the
    pages need to read it. ``id`` is its path relative to the root; ``parents`` map roles to run ids under the
    root (None: recorded outside it, not followed)."""

    path: Path = Path(".")
    id: str = ""
    root: Path | None = None  # the resolved runs root: every file of the run is read through checked(root, ...)
    metrics: dict = field(default_factory=dict)  # the numeric entries of metrics.json
    config: dict = field(default_factory=dict)
    n_snapshots: int = 0
    has_embedding: bool = False
    has_audit: bool = False  # an audit.json (scarlab audit) that may be read
    has_offline_audit: bool = False  # an audit_offline.json (scarlab audit --mode offline) that may be read
    usable: bool = True
    """its manifest, config and metrics parse and hold fields of the right types (else it is listed on the Runs
    page with its problem and left out of the others)."""
    problems: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        """How pickers name one run: ``scar · lr=2.5e-4 · class 3 · s0 · <id>``."""
        seed = f"s{self.seed}" if self.seed is not None else ""
        return " · ".join(p for p in (self.label, self.forget, seed, self.id) if p)

    @property
    def group_key(self) -> tuple:
        """Runs that are comparable side by side: same original model and same forget set."""
        return (self.parents.get("original"), self.dataset, self.scenario, self.forget)


def _resolve_parent(root: Path, value, names: dict[str, str]) -> str | None:
    """A recorded parent path as a run id under the root (by path, else by folder name after a move)."""
    if not value:
        return None
    p = inside(root, value)
    if p is not None and checked(root, p / "manifest.json").value is not None:
        return p.relative_to(root).as_posix()
    return names.get(Path(str(value)).name)


def snapshot_files(run_path: Path, root: Path | None) -> tuple[list[Path], list[str]]:
    """The readable ``features/step_*.npz`` of a run, and a reason for each one refused."""
    feats = run_path / "features"
    if not feats.is_dir():
        return [], []
    ok, refused = [], []
    for f in sorted(feats.glob("step_*.npz")):
        got = checked(root, f)
        if got.value is not None:
            ok.append(f)
        elif got.error:
            refused.append(got.error)
    return ok, refused


@st.cache_data(show_spinner=False, max_entries=4096)
def _summary(root: str, rel: str, sigs: tuple) -> Run:
    root_p = Path(root)
    path = root_p / rel
    docs, errors = {}, {}
    for name in ("manifest", "config", "metrics"):
        docs[name], errors[name] = read_json(path / f"{name}.json", root_p)
    info = describe(path, docs["manifest"], docs["config"], docs["metrics"] or {})
    run = Run(**{**vars(info), "path": path}, id=rel, root=root_p, config=docs["config"] or {},
              problems=[e for e in errors.values() if e])
    if docs["manifest"] is None and not errors["manifest"]:
        run.problems.insert(0, "no manifest.json (a partial or foreign folder)")  # status "missing"
    elif errors["manifest"] or (run.problems and run.status not in ("failed", "running", "invalid")):
        run.status = "unreadable"  # as summary.csv says of a run whose files cannot be read
    run.usable = run.status != "invalid" and not any(errors.values())
    run.metrics = {k: v for k, v in (docs["metrics"] or {}).items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
    snaps, refused = snapshot_files(path, root_p)
    run.n_snapshots = len(snaps)
    run.problems += refused[:3]
    emb = checked(root_p, path / "embedding.parquet")
    run.has_embedding = emb.value is not None
    if emb.error:
        run.problems.append(emb.error)
    for name, attr in (("audit.json", "has_audit"), ("audit_offline.json", "has_offline_audit")):
        aud = checked(root_p, path / name)
        setattr(run, attr, aud.value is not None)
        if aud.error:
            run.problems.append(aud.error)
    return run


def _skip(p: Path) -> bool:
    return any(part.startswith(".") or part in ("features", "checkpoints", "__pycache__") for part in p.parts)


def scan(root: Path) -> Loaded:
    """Every run under ``root`` (folders holding a manifest.json, plus partial folders without one).

    Returns ``Loaded(list[Run], error)``; parents are resolved to run ids under the root.
    """
    if root is None:
        return Loaded([], "no runs root given: start with `scarlab dashboard --runs DIR` or set SCARLAB_RUNS")
    try:
        root = Path(root).resolve()
    except (OSError, RuntimeError) as exc:
        return Loaded([], f"runs root {root} cannot be resolved: {exc}")
    if not root.is_dir():
        return Loaded([], f"runs root {root} does not exist or is not a folder")
    found: dict[str, Path] = {}
    try:
        for marker in ("manifest.json", "config.json", "history.csv"):
            for f in root.rglob(marker):
                rel_parent = f.parent.relative_to(root)
                if _skip(rel_parent):
                    continue
                real = inside(root, f.parent)
                if real is None:  # a symlink out of the root
                    continue
                if marker != "manifest.json" and (f.parent / "manifest.json").exists():
                    continue
                found.setdefault(rel_parent.as_posix() or ".", f.parent)
    except OSError as exc:
        return Loaded([], f"cannot list {root}: {exc}")
    runs = []
    for rel, p in sorted(found.items()):
        sigs = tuple(_sig(p / n) for n in ("manifest.json", "config.json", "metrics.json", "embedding.parquet",
                                          "audit.json"))
        feats = p / "features"
        fsig = _sig(feats) if feats.is_dir() else None
        runs.append(_summary(str(root), rel, sigs + (fsig,)))
    names: dict[str, str] = {}
    for r in runs:
        names.setdefault(r.path.name, r.id)
    for r in runs:
        r.parents = {k: _resolve_parent(root, v, names) for k, v in r.parents.items()}
    return Loaded(runs)


def runs_table(runs: list[Run]) -> pd.DataFrame:
    """One row per run for the Runs page: identity, state, and the summary metrics (fractions, keys as in
    metrics.json and summary.csv)."""
    rows = []
    for r in runs:
        row = {"run": r.id, "status": r.status, "stage": r.stage, "label": r.label, "method": r.method,
               "dataset": r.dataset or "?", "model": r.model or "?", "scenario": r.scenario, "forget": r.forget,
               "seed": r.seed, "snapshots": r.n_snapshots, "embedded": r.has_embedding,
               "created": pd.to_datetime(r.created, unit="s") if r.created else pd.NaT,
               "problem": "; ".join(filter(None, [r.error] + r.problems)) or ""}
        row.update({k: r.metrics.get(k, math.nan) for k in R.SUMMARY_KEYS})
        rows.append(row)
    cols = ["run", "status", "stage", "label", "method", "dataset", "model", "scenario", "forget", "seed",
            "snapshots", "embedded", "created", *R.SUMMARY_KEYS, "problem"]
    return pd.DataFrame(rows, columns=cols).astype({"seed": "Int64"})


def by_id(runs: list[Run]) -> dict[str, Run]:
    return {r.id: r for r in runs}


# ----------------------------------------------------------------------------- per-run contents
def _frame_ok(df: pd.DataFrame, need, name: str) -> str | None:
    missing = [c for c in need if c not in df.columns]
    return f"{name} lacks column(s) {', '.join(missing)}" if missing else None


def embedding(run: Run) -> Loaded:
    """``embedding.parquet`` as (DataFrame, metadata); checks the columns the pages need."""
    f = run.path / "embedding.parquet"
    got = read_parquet(f, run.root)
    if got.value is None:
        return Loaded(None, got.error or f"{run.id} has no embedding.parquet yet: run `scarlab embed {run.id}`")
    df, meta = got.value
    bad = _frame_ok(df, EMBED_COLUMNS, f"{run.id}/embedding.parquet")
    if bad:
        return Loaded(None, bad)
    if not len(df):
        return Loaded(None, f"{run.id}/embedding.parquet is empty")
    missing = {c: fill for c, fill in (("target", -1), ("index", -1), ("conf", np.nan), ("dist_own", np.nan),
                                       ("dist_target", np.nan)) if c not in df.columns}
    if missing:  # never write into the cached frame
        df = df.assign(**missing)
    return Loaded((df, meta))


def snapshot_table(run: Run) -> Loaded:
    """The snapshots' small arrays (no features) as one table — for runs without an embedding.

    Columns: step, point, group, index, label, pred, target, dist_own, dist_target. Unreadable snapshot files
    are skipped and reported in ``error``.
    """
    files, problems = snapshot_files(run.path, run.root)
    if not files:
        return Loaded(None, "; ".join(problems) or f"{run.id} has no feature snapshots")
    parts = []
    for f in files:
        got = read_npz(f, run.root)
        if got.value is None:
            problems.append(got.error)
            continue
        z = got.value
        if "labels" not in z or "preds" not in z or "group" not in z:
            problems.append(f"{f.name}: missing labels/preds/group")
            continue
        n = len(z["labels"])
        try:
            step = int(f.stem.split("_")[1])
        except (IndexError, ValueError):
            continue
        nan = np.full(n, np.nan, np.float32)
        parts.append(pd.DataFrame({
            "step": step, "point": np.arange(n), "group": z["group"].astype(np.int8),
            "index": z.get("index", np.full(n, -1)), "label": z["labels"], "pred": z["preds"],
            "target": z.get("targets", np.full(n, -1)), "dist_own": z.get("dist_own", nan),
            "dist_target": z.get("dist_target", nan)}))
    if not parts:
        return Loaded(None, "; ".join(problems) or f"{run.id}: no readable snapshots")
    return Loaded(pd.concat(parts, ignore_index=True), "; ".join(problems) or None)


def points_table(run: Run) -> Loaded:
    """Per-step probe points from the embedding when present (it carries everything), else from the snapshots."""
    emb = embedding(run)
    if emb.value is not None:
        return Loaded(emb.value[0])
    snap = snapshot_table(run)
    if snap.value is None:
        return Loaded(None, "; ".join(filter(None, [emb.error, snap.error])))
    return snap


@st.cache_resource(show_spinner=False, max_entries=64)
def _thumbs(root: str, sig: FileSig, key: str, group: str | None) -> Loaded:
    got = _parquet(root, sig, (key, "png") if group is None else ("group", key, "png"))
    if got.value is None:
        return Loaded({}, got.error)
    df = got.value[0]
    try:
        if group is not None:
            df = df[df["group"] == GROUPS.index(group)]
        return Loaded(dict(zip(df[key].astype(int).tolist(), df["png"].astype(str).tolist())))
    except (TypeError, ValueError, KeyError) as exc:
        return Loaded({}, _err(Path(sig.path), exc))


def _thumbs_of(run: Run, key: str, group: str | None = None) -> Loaded:
    """``thumbs.parquet`` as {``key`` column: base64 PNG} (of one probe group's points; a shared, read-only dict)."""
    got = checked(run.root, run.path / "thumbs.parquet")
    return _thumbs(str(run.root), got.value, key, group) if got.value is not None else Loaded({}, got.error)


def thumbs(run: Run) -> Loaded:
    """``thumbs.parquet`` as {point: base64 PNG} (a shared, read-only dict)."""
    return _thumbs_of(run, "point")


def history(run: Run) -> Loaded:
    got = read_csv(run.path / "history.csv", run.root)
    if got.value is not None and len(got.value) and "step" not in got.value.columns and "epoch" not in got.value.columns:
        return Loaded(None, f"{run.id}/history.csv has neither a step nor an epoch column")
    return got


def mia_steps(run: Run) -> Loaded:
    got = read_csv(run.path / "mia_steps.csv", run.root)
    if got.value is not None and len(got.value) and "step" not in got.value.columns:
        return Loaded(None, f"{run.id}/mia_steps.csv has no step column")
    return got


def per_class(run: Run) -> Loaded:
    """Per-class test accuracy [K] from ``perclass.json`` (evaluation) or ``acc/per_class/...`` metrics keys.

    Returns ``Loaded((accuracies: list[float], class names: list[str], source), error)`` or value None.
    """
    got = read_json(run.path / "perclass.json", run.root)
    if got.value is not None:
        d = got.value
        for key in ("per_class_test", "acc/per_class_test", "test"):
            v = d.get(key)
            if isinstance(v, list) and v:
                names = d.get("class_names") if isinstance(d.get("class_names"), list) else None
                acc = pd.to_numeric(pd.Series(v, dtype=object), errors="coerce").astype(float).tolist()
                return Loaded((acc, [str(n) for n in (names or range(len(v)))], "perclass.json"))
    found = {}
    for k, v in run.metrics.items():
        m = re.fullmatch(r"acc/(?:per_?class|class)(?:/test)?/(\d+)", k)
        if m:
            found[int(m.group(1))] = float(v)
    if found:
        k = max(found) + 1
        return Loaded(([found.get(i, math.nan) for i in range(k)], [str(i) for i in range(k)], "metrics.json"))
    return Loaded(None, got.error)


def class_names(run: Run, meta: dict | None = None, k: int | None = None) -> list[str]:
    names = (meta or {}).get("classes")
    if isinstance(names, list) and names and (k is None or len(names) >= k):
        return [str(n) for n in names]
    return [str(i) for i in range(k or 0)]


def error_text(run: Run, limit: int = 4000) -> Loaded:
    """The end of the run's ``error.txt`` (``Loaded(None, None)`` when there is none)."""
    return read_text_tail(run.path / "error.txt", run.root, limit)


def manifest(run: Run) -> Loaded:
    return read_json(run.path / "manifest.json", run.root)


# ----------------------------------------------------------------------------- comparison
def metrics_frame(runs: list[Run]) -> pd.DataFrame:
    """One row per run with metrics, in :func:`scarlab.results.frame`'s columns (what summary.csv holds: label,
    method, variant, data set, model, scenario, forget classes, seed, status, every metric of ``METRICS``), with
    ``run`` = the run id, ``forget`` = its forget set as text, and every other numeric metric the runs record."""
    runs = [r for r in runs if r.metrics]
    df = R.frame([{**R.row(r, r.metrics), "run": r.id} for r in runs])
    df = df.fillna({"dataset": "?", "model": "?"})
    df["forget"] = df["run"].map({r.id: r.forget for r in runs})
    known = set(R.METRIC_KEYS) | set(R.INTERVAL_KEYS)
    extra = pd.DataFrame([{k: v for k, v in r.metrics.items() if k not in known} for r in runs],
                         index=[r.id for r in runs])
    return df.join(extra, on="run") if len(extra.columns) else df


def run_sig(run: Run | None) -> tuple:
    """Signatures (path, mtime, size) of the files pages draw from: a cache key that changes with the run."""
    if run is None:
        return ()
    names = ("manifest.json", "config.json", "embedding.parquet", "history.csv", "mia_steps.csv", "metrics.json",
             "perclass.json", "thumbs.parquet") + AUDIT_FILES
    feats = run.path / "features"
    return tuple(_sig(run.path / n) for n in names) + ((_sig(feats),) if feats.is_dir() else ())


# ----------------------------------------------------------------------------- the U-LiRA audit (scarlab.audit)
def _finite(v) -> float:
    try:
        f = float(v) if not isinstance(v, bool) else math.nan
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) else math.nan


def _audit_json(run: Run, name: str) -> tuple[Loaded, dict | None, dict]:
    """(what reading one of the run's audit JSON files gave, its contents or None, its finite numeric metrics)."""
    got = read_json(run.path / name, run.root)
    if got.value is None:
        return got, None, {}
    raw = got.value.get("metrics") if isinstance(got.value.get("metrics"), dict) else {}
    return got, got.value, {k: f for k, v in raw.items() if isinstance(k, str) and (f := _finite(v)) == f}


def audit(run: Run) -> Loaded:
    """``audit.json`` as a dict with ``metrics`` (numeric ``ulira/*`` entries only), ``k``, ``roc`` (``fpr``,
    ``tpr``: equal-length float arrays, or None), ``populations`` (``a``, ``b``: text). ``Loaded(None, None)``
    when the run has none."""
    got, doc, metrics = _audit_json(run, "audit.json")
    if doc is None:
        return got
    roc, problem = _roc(doc.get("roc"), f"{run.id}/audit.json: roc")
    ctl = doc.get("control") if isinstance(doc.get("control"), dict) else {}
    control_roc, control_problem = _roc(ctl.get("roc"), f"{run.id}/audit.json: control roc")
    pops = doc.get("populations") if isinstance(doc.get("populations"), dict) else {}
    return Loaded({"metrics": metrics, "roc": roc, "control_roc": control_roc,
                   "control": str(ctl.get("what", "")), "k": _count(doc.get("k", metrics.get("ulira/k"))),
                   "populations": {s: str(pops.get(s, "")) for s in ("a", "b")}}, problem or control_problem)


def _roc(r, what: str) -> tuple[tuple[np.ndarray, np.ndarray] | None, str | None]:
    """(fpr, tpr) float arrays of equal length from an audit.json ROC entry, or (None, the problem)."""
    if not isinstance(r, dict):
        return None, None
    try:
        fpr = np.asarray(r.get("fpr"), float).ravel()
        tpr = np.asarray(r.get("tpr"), float).ravel()
    except (TypeError, ValueError):
        return None, f"{what} is not numeric"
    if len(fpr) and len(fpr) == len(tpr):
        return (fpr, tpr), None
    return None, f"{what}: fpr and tpr differ in length"


def audit_offline(run: Run) -> Loaded:
    """``audit_offline.json`` as a dict with ``metrics`` (numeric ``ulira/offline/*`` entries only), ``k``, ``a``
    (RMIA's), ``a_source``, ``control`` (what the control examples are) and ``n_control``, ``n_examples``.
    ``Loaded(None, None)`` when the run has none."""
    got, doc, metrics = _audit_json(run, "audit_offline.json")
    if doc is None:
        return got
    rmia = doc.get("rmia") if isinstance(doc.get("rmia"), dict) else {}
    ctl = doc.get("control") if isinstance(doc.get("control"), dict) else {}
    return Loaded({"metrics": metrics, "k": _count(doc.get("k")),
                   "a": _finite(rmia.get("a")), "a_source": str(rmia.get("a_source", "")),
                   "control": str(ctl.get("what", "")), "n_control": _count(ctl.get("n_examples")),
                   "n_examples": _count(doc.get("n_examples"))})


def _count(v) -> int | None:
    f = _finite(v)
    return int(f) if f == f and f >= 0 else None


def audit_offline_table(run: Run) -> Loaded:
    """``audit_offline.parquet``: one row per forget and control example (index, part, label, lira_z, rmia_score,
    ...): a shared, read-only frame."""
    return _audit_frame(run, "audit_offline.parquet", OFFLINE_COLUMNS)


def _audit_frame(run: Run, name: str, need: tuple[str, ...]) -> Loaded:
    """One of the run's audit tables, refused (one line) when it lacks a column the page draws from."""
    got = read_parquet(run.path / name, run.root)
    if got.value is None:
        return Loaded(None, got.error or f"{run.id} has no {name}")
    df = got.value[0]
    bad = _frame_ok(df, need, f"{run.id}/{name}")
    return Loaded(None, bad) if bad else Loaded(df)


def audit_table(run: Run) -> Loaded:
    """``audit.parquet``: one row per forget example (index, label, target_log_lr, eps, example_auc,
    flagged@0.01, ...): a shared, read-only frame."""
    return _audit_frame(run, "audit.parquet", AUDIT_COLUMNS)


def audit_scores(run: Run) -> Loaded:
    """``audit_scores.npz`` (no pickles): scores_a, scores_b [K, N], target [N], index, labels [N]; checked for
    consistent shapes."""
    got = read_npz(run.path / "audit_scores.npz", run.root, AUDIT_SCORE_KEYS)
    if got.value is None:
        return Loaded(None, got.error or f"{run.id} has no audit_scores.npz")
    z = got.value
    missing = [k for k in ("scores_a", "scores_b", "target") if k not in z]
    if missing:
        return Loaded(None, f"{run.id}/audit_scores.npz lacks {', '.join(missing)}")
    a, b, t = z["scores_a"], z["scores_b"], z["target"]
    if a.ndim != 2 or b.ndim != 2 or t.ndim != 1 or a.shape[1] != len(t) or b.shape[1] != len(t):
        return Loaded(None, f"{run.id}/audit_scores.npz: shapes {a.shape}, {b.shape}, {t.shape} do not match")
    if not all(np.issubdtype(x.dtype, np.number) for x in (a, b, t)):
        return Loaded(None, f"{run.id}/audit_scores.npz: scores are not numeric")
    return Loaded(z)


def audit_steps(run: Run) -> Loaded:
    """``audit_steps.csv`` (step, ulira/log_lr_mean, ulira/flagged@0.01, n_examples); ``Loaded(None, None)`` when
    the run has none."""
    got = read_csv(run.path / "audit_steps.csv", run.root)
    if got.value is not None and len(got.value) and "step" not in got.value.columns:
        return Loaded(None, f"{run.id}/audit_steps.csv has no step column")
    return got


def audit_steps_examples(run: Run) -> Loaded:
    """``audit_steps.npz``: step [S], index [P], log_lr [S, P], threshold [S] (the audit over steps per forget
    example); ``Loaded(None, None)`` when the run has none, an error when its shapes do not match."""
    if not (run.path / "audit_steps.npz").is_file():
        return Loaded(None)
    got = read_npz(run.path / "audit_steps.npz", run.root, ("step", "index", "log_lr", "threshold"))
    if got.value is None:
        return got
    z = got.value
    missing = [k for k in ("step", "index", "log_lr", "threshold") if k not in z]
    if missing:
        return Loaded(None, f"{run.id}/audit_steps.npz lacks {', '.join(missing)}")
    if z["log_lr"].shape != (len(z["step"]), len(z["index"])) or z["threshold"].shape != z["step"].shape:
        return Loaded(None, f"{run.id}/audit_steps.npz: shapes {z['log_lr'].shape}, {z['step'].shape}, "
                            f"{z['index'].shape}, {z['threshold'].shape} do not match")
    return Loaded(z)


def thumbs_by_index(run: Run) -> Loaded:
    """The run's forget-sample thumbnails (the audited forget examples) as {training-set index: base64 PNG}
    (empty without thumbs.parquet)."""
    return _thumbs_of(run, "index", "forget_train")


# ----------------------------------------------------------------------------- the Run page: who may launch, live views
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _flag(argv: list[str], name: str) -> bool:
    return any(a == name or a == f"{name}=true" for a in argv)


def data_folders(argv: list[str] | None = None) -> list[Path]:
    """The folders the Run page may read data sets and surrogates from: each ``--data DIR`` of the script arguments
    (``scarlab dashboard --data DIR``) and ``$SCARLAB_SHARED_DATA`` when set."""
    argv = sys.argv[1:] if argv is None else argv
    out = [argv[i + 1] for i, a in enumerate(argv) if a == "--data" and i + 1 < len(argv)]
    out += [a.split("=", 1)[1] for a in argv if a.startswith("--data=")]
    if os.environ.get("SCARLAB_SHARED_DATA"):
        out.append(os.environ["SCARLAB_SHARED_DATA"])
    return list(dict.fromkeys(Path(p).expanduser().resolve() for p in out if p))


def run_page_refusal(argv: list[str] | None = None, address: str | None = None) -> str | None:
    """Why this server shows no Run page (None: it does): started ``--read-only`` (or ``$SCARLAB_READ_ONLY`` set),
    or bound beyond loopback (``server.address`` unset or not 127.0.0.1 / ::1 / localhost) without
    ``--allow-remote-run``."""
    argv = sys.argv[1:] if argv is None else argv
    if _flag(argv, "--read-only") or os.environ.get("SCARLAB_READ_ONLY", "").lower() in ("1", "true", "yes"):
        return "this dashboard was started read-only (--read-only): it launches nothing"
    if address is None:
        address = st.get_option("server.address") or ""
    if address not in LOOPBACK and not _flag(argv, "--allow-remote-run"):
        return (f"this dashboard listens on {address or 'every interface'}, beyond this machine: launching jobs is "
                "off unless it is started with --allow-remote-run")
    return None


def live_embedding(run_path: Path, root: Path | None) -> Loaded:
    """The snapshots a running (or finished) run has written so far, as embedding rows for ``plots.migration_figure``:
    a PCA of the penultimate features fitted on the first snapshot (the original model's features, as the UMAP
    reducer is) places every step on the same axes. Cheap enough to redo at each refresh; files being written are
    skipped until complete."""
    files, problems = snapshot_files(run_path, root)
    parts, basis = [], None
    for f in files:
        got = read_npz(f, root, SNAPSHOT_KEYS + ("features",))
        z = got.value
        if z is None or "features" not in z or "labels" not in z or "preds" not in z or "group" not in z:
            if got.error:
                problems.append(got.error)
            continue
        try:
            step = int(f.stem.split("_")[1])
            feats = np.asarray(z["features"], np.float32)
            if basis is None:
                mean = feats.mean(0)
                _, _, vt = np.linalg.svd(feats - mean, full_matrices=False)
                basis = (mean, vt[:2].T)
            xy = (feats - basis[0]) @ basis[1]
        except (ValueError, IndexError, np.linalg.LinAlgError) as exc:
            problems.append(_err(f, exc))
            continue
        n = len(z["labels"])
        if xy.shape != (n, 2):
            problems.append(f"{f.name}: features and labels differ in length")
            continue
        parts.append(pd.DataFrame({
            "step": step, "point": np.arange(n), "group": z["group"].astype(np.int8), "label": z["labels"],
            "pred": z["preds"], "target": z.get("targets", np.full(n, -1)), "index": z.get("index", np.full(n, -1)),
            "x": xy[:, 0], "y": xy[:, 1]}))
    if not parts:
        return Loaded(None, "; ".join(problems) or None)
    return Loaded(pd.concat(parts, ignore_index=True), "; ".join(problems) or None)
