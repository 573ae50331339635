"""Run directories: the contract between stages, the pipeline and the dashboard.

Layout (every file optional except the manifest)::

    manifest.json          id, stage, status running -> complete | failed (+ error), versions, parents, files
    config.json            the stage's configuration (a dataclass as a dict)
    split.npz              forget / retain / test indices
    history.csv            one row per step/epoch, namespaced columns (loss/forget, acc/forget_train, ...)
    metrics.json           final flat dict (acc/retain_test, mia/svc/acc, mia/svc/chance, aus, time/unlearn_s, ...)
    stats.npz              per-class feature statistics (original models only; SCAR reads them)
    features/step_XXXXXX.npz   feature snapshots; embedding.parquet: their UMAP coordinates
    checkpoints/model.pt   state dict + model spec (load with weights_only=True)

The status is written last, so a crashed stage is visible as ``failed`` and never half-read.
"""
from __future__ import annotations

import csv
import dataclasses
import fcntl
import fnmatch
import io
import json
import math
import os
import platform
import socket
import stat
import subprocess
import time
import traceback
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np

from .errors import ScarlabError, disk_error
from .interrupts import stage_lock

STATUSES = ("running", "complete", "failed")
ROLES = {"train_original": "original", "train_retrained": "retrained oracle", "unlearn": "unlearned model",
         "split": "split", "evaluate": "evaluated original"}
"""the role a run plays for the stages that read it, by the stage that made it (its manifest's ``stage``)."""
ORIGINAL, RETRAINED = ("train_original",), ("train_retrained",)
HOLDS_SPLIT = ("split", "train_retrained", "unlearn", "evaluate")
GROUPS = ("forget_train", "retain_test", "forget_test")
"""the probe groups of a feature snapshot (``features/step_*.npz``, ``embedding.parquet``, ``thumbs.parquet``), by
their ``group`` code 0, 1, 2 (CR: forget-class test points; HR: group 1 is the whole test set, 2 is empty)."""
"""the stages whose runs hold a split.npz (any of them can be passed as a split)."""


def _json_default(o):
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.ndarray,)):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")


@contextmanager
def replacing(path: Path, tmp: Path | None = None):
    """Yield a temporary path beside ``path`` (default ``path`` + ``.tmp``) to write; it is renamed onto ``path``
    when the block succeeds and removed when it fails, so a full or read-only disk leaves no temporary file."""
    path = Path(path)
    tmp = tmp or path.with_name(path.name + ".tmp")
    try:
        yield tmp
        tmp.replace(path)
    except BaseException:
        with suppress(OSError):
            tmp.unlink()
        raise


@contextmanager
def locked(path: Path):
    """An exclusive advisory lock (``flock``) on the file ``path`` (created if missing) for the block: processes and
    threads that read, change and write the same record take turns instead of losing each other's changes."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_json(path: Path, obj) -> None:
    """Atomic JSON write (temp file + rename), NaN written as null so any JSON reader can parse it."""
    text = json.dumps(_nan_to_none(obj), indent=2, default=_json_default, allow_nan=False)
    with replacing(path) as tmp:
        tmp.write_text(text)


def _nan_to_none(o):
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _nan_to_none(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_nan_to_none(v) for v in o]
    return o


class CorruptFile(ScarlabError, ValueError):
    """A run file that exists but cannot be used (corrupt, not a regular file); a ValueError too, so readers that
    treat unreadable records as missing keep doing so."""


MAX_JSON_BYTES = 64 << 20
"""a run's JSON records (manifest, config, metrics, audit) are kilobytes: a larger file is refused before parsing."""
MAX_JSON_DEPTH = 64
"""scarlab's records nest a few levels: a deeper one is refused, so no reader recurses into it."""


def _depth(data) -> int:
    """How deeply ``data`` nests lists and objects (iterative: never recurses)."""
    deepest, todo = 0, [(data, 1)]
    while todo:
        node, d = todo.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, d)
            if d <= MAX_JSON_DEPTH:
                todo += [(v, d + 1) for v in (node.values() if isinstance(node, dict) else node)]
    return deepest


def check_json_size(size: int, name) -> None:
    """A one-line :class:`CorruptFile` when a JSON file of ``size`` bytes is over :data:`MAX_JSON_BYTES` (call it
    with the file's ``stat`` size to refuse it before reading)."""
    if size > MAX_JSON_BYTES:
        raise CorruptFile(f"{name} is larger than the {MAX_JSON_BYTES >> 20} MiB a JSON record may hold; not read")


def parse_json(raw: bytes | str, name) -> dict:
    """The JSON object in ``raw`` (the contents of file ``name``), within :data:`MAX_JSON_BYTES` and
    :data:`MAX_JSON_DEPTH`; anything else is a one-line :class:`CorruptFile` naming the file. Every reader of run
    folders (this module, ``scarlab.results``, the dashboard's gated reader) parses JSON here."""
    check_json_size(len(raw), name)
    try:
        data = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except RecursionError:
        data = None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptFile(f"{name} cannot be read ({type(e).__name__}: {e}); rerun the stage that writes it "
                          "(or delete the run directory)") from None
    if data is None or _depth(data) > MAX_JSON_DEPTH:
        raise CorruptFile(f"{name} nests lists or objects deeper than {MAX_JSON_DEPTH} levels; not read")
    if not isinstance(data, dict):
        raise CorruptFile(f"{name} does not hold a JSON object; rerun the stage that writes it")
    return data


def read_json(path: Path) -> dict:
    """A JSON object from a regular file. A missing file raises FileNotFoundError; anything else unusable (corrupt,
    not an object, too large or deep, a FIFO or device) is a one-line :class:`CorruptFile` naming the file — never
    a hang."""
    path = Path(path)
    info = path.stat()  # FileNotFoundError when missing
    if not stat.S_ISREG(info.st_mode):
        raise CorruptFile(f"{path} is not a regular file; remove it or rerun the stage that writes it")
    check_json_size(info.st_size, path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_JSON_BYTES + 1)  # a larger file is never read whole
    except OSError as e:
        raise CorruptFile(f"{path} cannot be read ({type(e).__name__}: {e}); rerun the stage that writes it "
                          "(or delete the run directory)") from None
    return parse_json(raw, path)


# ------------------------------------------------------------------ what each field of a run record must hold
def _text(v) -> bool:
    return isinstance(v, str)


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _object(v) -> bool:
    return isinstance(v, dict)


def _optional(check):
    return lambda v: v is None or check(v)


_TEXT, _OPT_TEXT = (_text, "text"), (_optional(_text), "text or null")
RECORD_FIELDS = {
    "manifest.json": {
        "stage": _TEXT, "status": _TEXT, "error": _OPT_TEXT, "created": (_optional(_number), "a number"),
        "parents": (lambda v: _object(v) and all(map(_text, v.values())), "an object of role: path (text)"),
        "files": (lambda v: isinstance(v, list) and all(map(_text, v)), "a list of file names (text)"),
        "stages": (lambda v: _object(v) and all(map(_object, v.values())), "an object of stage: object"),
        "evaluation": (_object, "an object"),
    },
    "config.json": {
        **{k: _OPT_TEXT for k in ("method", "dataset", "model", "scenario", "data_root", "original", "retrained",
                                  "split", "run")},
        "variant": (_optional(_object), "an object"), "params": (_optional(_object), "an object"),
        "forget_classes": (_optional(lambda v: isinstance(v, list) and all(map(_whole, v))),
                           "a list of whole numbers"),
        "forget_size": (_optional(_whole), "a whole number"), "seed": (_optional(_whole), "a whole number"),
    },
}
"""The fields of ``manifest.json`` and ``config.json`` that scarlab reads, with what each must hold when present
(a missing field takes its default); every value of ``metrics.json`` is a number or null."""


def _shown(v, limit: int = 40) -> str:
    """A value as short JSON text, for messages."""
    text = json.dumps(v, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def record_problem(name: str, doc: dict) -> str | None:
    """The first field of the run record ``name`` (manifest.json, config.json or metrics.json, already parsed into
    ``doc``) whose value a reader cannot use, as one line; None when every field is usable (see
    :data:`RECORD_FIELDS`)."""
    if name == "metrics.json":
        bad = next((k for k, v in doc.items() if v is not None and not _number(v)), None)
        return None if bad is None else f"{name}: {bad} must be a number, found {_shown(doc[bad])}"
    for key, (ok, what) in RECORD_FIELDS.get(name, {}).items():
        if key in doc and not ok(doc[key]):
            return f"{name}: {key} must be {what}, found {_shown(doc[key])}"
    return None


def read_record(path: Path) -> dict:
    """:func:`read_json` of a run record, its fields checked by :func:`record_problem` (a one-line
    :class:`CorruptFile` naming the file and the field)."""
    data = read_json(path)
    problem = record_problem(Path(path).name, data)
    if problem:
        raise CorruptFile(f"{Path(path).parent}/{problem}; rerun the stage that writes it")
    return data


def intact(f: Path) -> bool:
    """Whether run file ``f`` is a regular file that parses: JSON, CSV (a header, every row as wide as it, the last
    one ended by a newline), Parquet (its footer), ``.npz``/``.pt`` archives (their CRC check). A truncated file
    fails, so a stage whose files were damaged is made again instead of reused."""
    import zipfile

    f = Path(f)
    try:
        if not f.is_file():
            return False
        if f.suffix == ".json":
            read_json(f)
        elif f.suffix == ".csv":
            text = f.read_text(encoding="utf-8")
            rows = list(csv.reader(io.StringIO(text)))
            return bool(rows) and text.endswith("\n") and all(len(r) == len(rows[0]) for r in rows)
        elif f.suffix == ".parquet":
            import pyarrow.parquet as pq
            pq.read_metadata(f)
        elif f.suffix in (".npz", ".pt"):
            with zipfile.ZipFile(f) as z:
                return z.testzip() is None
    except (OSError, ValueError, UnicodeDecodeError, csv.Error, zipfile.BadZipFile):
        return False
    return True


def make_folder(path, what: str) -> Path:
    """Create the folder ``path`` (and its parents) for ``what`` (e.g. "--summary"), or raise one line saying why it
    cannot be made (a file in the way, a read-only or virtual file system such as /proc)."""
    p = Path(path).expanduser()
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a full or read-only disk, or no permission, is said as everywhere (disk_error)
        why = "it is a file, not a folder" if p.is_file() else exc.strerror or type(exc).__name__
        raise disk_error(exc, p) or ScarlabError(f"{what} {p} cannot be made ({why}); choose another folder") from None
    return p


def files_intact(run_dir) -> bool:
    """Every file the run's manifest lists is still there and parses (:func:`intact`): a truncated history.csv or
    split.npz is re-made, not trusted because the status says complete."""
    try:
        return all(intact(Path(run_dir) / name) for name in RunDir(run_dir).manifest.get("files", []))
    except (OSError, ValueError, ScarlabError):
        return False


def pid_alive(pid) -> bool:
    """Whether process ``pid`` exists on this machine."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    except (TypeError, ValueError):
        return False
    return True


def _git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> dict:
    import torch
    from . import __version__
    return {"scarlab": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "numpy": np.__version__}


# scarlab's own files in a run directory besides those its manifest lists (a run killed mid-stage lists none):
# with them, everything --overwrite may delete
OWN_FILES = ("manifest.json", "config.json", "error.txt", "split.npz", "history.csv", "metrics.json", "stats.npz",
             "checkpoints/model.pt", "features/step_*.npz", "notebook.ipynb", "kernel_*.log", ".*.lock")


def is_scarlab_manifest(m) -> bool:
    """Whether ``m`` has the fields every manifest scarlab writes has, with their types."""
    return (isinstance(m, dict) and isinstance(m.get("id"), str) and isinstance(m.get("stage"), str)
            and m.get("status") in STATUSES and isinstance(m.get("files"), list)
            and all(isinstance(f, str) for f in m["files"]))


def clear_run(path: Path) -> None:
    """Delete what scarlab wrote in the run directory ``path`` (``--overwrite``, a stage made again): the files its
    manifest lists and :data:`OWN_FILES`, and only if it holds nothing else; a folder that is not a scarlab run, or
    that holds anyone else's files, is refused and left as it was."""
    try:
        m = read_json(path / "manifest.json") if not (path / "manifest.json").is_symlink() else None
    except FileNotFoundError:
        raise ScarlabError(f"{path} is not a scarlab run directory (no manifest.json) and is not empty; refusing "
                           "to delete it: choose another --out") from None
    except ScarlabError:
        m = None
    if not is_scarlab_manifest(m):
        raise ScarlabError(f"{path}/manifest.json was not written by scarlab; refusing to replace {path}: choose "
                           "another --out")
    listed = set(m["files"])
    ours, others = [], []
    for top, dirs, names in os.walk(path):
        for name in names + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
            rel = os.path.relpath(os.path.join(top, name), path)
            mine = rel in listed or any(fnmatch.fnmatchcase(rel, pattern) for pattern in OWN_FILES)
            (ours if mine else others).append(rel)
    if others:
        shown = ", ".join(sorted(others)[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise ScarlabError(f"{path} holds files scarlab did not write ({shown}); scarlab deletes only its own files: "
                           "move those elsewhere or choose another --out")
    for rel in ours:
        (path / rel).unlink()
    for top, dirs, _ in sorted(os.walk(path), reverse=True):  # emptied sub-folders, deepest first
        for d in dirs:
            with suppress(OSError):
                os.rmdir(os.path.join(top, d))


class RunDir:
    """One stage's output folder. Create with :meth:`create`, open an existing one with ``RunDir(path)``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ------------------------------------------------------------------ creation and status
    @classmethod
    def create(cls, path: str | os.PathLike, stage: str, config=None, parents: dict | None = None,
               overwrite: bool = False, device: str = "cpu") -> "RunDir":
        """Make the folder and write ``manifest.json`` (status ``running``) and ``config.json``.

        An existing run is never replaced without ``overwrite=True``.
        """
        run = cls(path)
        if run.path.is_symlink():
            raise ScarlabError(f"{run.path} is a symbolic link (to {os.path.realpath(run.path)}); give the folder "
                               "itself as --out")
        where = Path(os.path.abspath(run.path))
        made = not run.path.exists()
        if made:  # before the lock, whose file lies beside it: a folder that cannot be made is one line
            make_folder(run.path, "run directory")
        # one creator at a time: the second waits here, then finds the first's manifest (and its PID) below
        with stage_lock(where.parent / f".{where.name}.create.lock", str(run.path), say=lambda _: None,
                        poll_s=0.02):
            if run.path.exists() and not run.path.is_dir():
                raise ScarlabError(f"{run.path} exists and is a file, not a run directory; choose another --out")
            if run.path.exists() and any(run.path.iterdir()):
                holder = run.live_holder()
                if holder:
                    raise ScarlabError(f"{run.path} is being written by process {holder} on this machine; wait for it "
                                       "to finish or stop it, or choose another --out")
                if not overwrite:
                    raise ScarlabError(f"{run.path} already exists and is not empty; pass --overwrite to replace it "
                                       "or choose another --out")
                clear_run(run.path)
            made = made or not run.path.exists()
            run.path.mkdir(exist_ok=True)
            manifest = {"id": run.path.name, "stage": stage, "status": "running", "created": time.time(),
                        "pid": os.getpid(), "host": socket.gethostname(),
                        "versions": _versions(), "git_sha": _git_sha(), "device": device,
                        "parents": {k: str(v) for k, v in (parents or {}).items()}, "files": []}
            try:
                write_json(run.path / "manifest.json", manifest)
                if config is not None:
                    write_json(run.path / "config.json", config)
            except BaseException:  # (a full disk) nothing half-made is left behind
                for name in ("config.json", "manifest.json"):
                    with suppress(OSError):
                        (run.path / name).unlink()
                if made:
                    with suppress(OSError):
                        run.path.rmdir()
                raise
        return run

    @property
    def manifest(self) -> dict:
        f = self.path / "manifest.json"
        if not f.is_file():
            raise ScarlabError(f"{self.path} is not a scarlab run directory (no manifest.json)")
        return read_record(f)

    @property
    def status(self) -> str:
        """running, complete or failed; a ``running`` run whose process is gone from this machine reads
        ``failed`` (it was interrupted: killed, or its machine stopped)."""
        m = self.manifest
        status = m.get("status", "unknown")
        if status == "running" and self._orphaned(m):
            return "failed"
        return status

    @property
    def error(self) -> str | None:
        m = self.manifest
        if m.get("status") == "running" and self._orphaned(m):
            return f"interrupted: process {m.get('pid')} ended without finishing the stage"
        return m.get("error")

    @staticmethod
    def _orphaned(m: dict) -> bool:
        return m.get("host") == socket.gethostname() and "pid" in m and not pid_alive(m["pid"])

    def live_holder(self) -> int | None:
        """The PID of the live process on this machine that is writing this run (status running), else None."""
        f = self.path / "manifest.json"
        if not f.is_file():
            return None
        try:
            m = read_json(f)
        except ScarlabError:
            return None
        if m.get("status") == "running" and m.get("host") == socket.gethostname() and pid_alive(m.get("pid")) \
                and m.get("pid") != os.getpid():
            return int(m["pid"])
        return None

    @property
    def config(self) -> dict:
        f = self.path / "config.json"
        return read_record(f) if f.is_file() else {}

    def update_manifest(self, **fields) -> None:
        m = self.manifest
        m.update(fields)
        write_json(self.path / "manifest.json", m)

    def finish(self, status: str = "complete", error: str | None = None, **fields) -> None:
        """Write the final status last; ``files`` lists what the stage left behind."""
        files = sorted(str(p.relative_to(self.path)) for p in self.path.rglob("*")
                       if p.is_file() and p.name != "manifest.json")
        extra = {"error": error} if error else {}
        self.update_manifest(status=status, finished=time.time(), files=files, **extra, **fields)

    def mark_failed(self, error: str) -> None:
        """Record ``failed`` with ``error``; when the disk is full the manifest is rewritten in place (its blocks
        exist already), and when it cannot be written at all the run still reads failed once this process ends."""
        try:
            self.finish("failed", error=error)
        except OSError:
            with suppress(OSError, ValueError), (self.path / "manifest.json").open("r+") as fh:
                m = json.load(fh)
                fh.seek(0)
                fh.write(json.dumps({**m, "status": "failed", "error": error, "finished": time.time()}))
                fh.truncate()

    @contextmanager
    def running(self):
        """Run a stage body, then mark the run ``complete``; on any exception (writing the status included) mark it
        ``failed`` with the error and re-raise — a full or read-only disk, or a folder deleted meanwhile, as one
        line (:class:`ScarlabError`)."""
        try:
            yield self
            self.finish("complete")
        except BaseException as exc:
            if not self.path.is_dir():  # nothing left to mark
                if isinstance(exc, KeyboardInterrupt):
                    raise
                raise ScarlabError(f"{self.path} was deleted while its stage was running; rerun the stage") from None
            disk = disk_error(exc, self.path)
            if isinstance(exc, KeyboardInterrupt):
                msg = "interrupted: stopped by the user (Ctrl-C or SIGTERM)"
            elif disk or isinstance(exc, ScarlabError):
                msg = str(disk or exc)
            else:
                msg = f"{type(exc).__name__}: {exc}"
            try:
                (self.path / "error.txt").write_text(traceback.format_exc())
            except OSError:  # no room for it: the manifest carries the error
                with suppress(OSError):
                    (self.path / "error.txt").unlink()
            self.mark_failed(msg or type(exc).__name__)
            if disk:
                raise disk from None
            raise

    # ------------------------------------------------------------------ contents
    def file(self, name: str) -> Path:
        return self.path / name

    def append_history(self, row: dict) -> None:
        """Append one row to ``history.csv``; new columns rewrite the file with the widened header."""
        f = self.path / "history.csv"
        rows, header = [], []
        if f.exists():
            with f.open(newline="") as fh:
                reader = csv.DictReader(fh)
                header = list(reader.fieldnames or [])
                if any(k not in header for k in row):
                    rows = list(reader)
        new_cols = [k for k in row if k not in header]
        if new_cols or not f.exists():
            header += new_cols
            with f.open("w", newline="") as fh:
                w = csv.DictWriter(fh, header)
                w.writeheader()
                w.writerows(rows)
                w.writerow(row)
        else:
            with f.open("a", newline="") as fh:
                csv.DictWriter(fh, header).writerow(row)

    def history(self):
        import pandas as pd
        f = self.path / "history.csv"
        return pd.read_csv(f) if f.exists() else pd.DataFrame()

    def write_metrics(self, metrics: dict, merge: bool = True) -> None:
        f = self.path / "metrics.json"
        old = read_json(f) if merge and f.exists() else {}
        write_json(f, {**old, **metrics})

    @property
    def metrics(self) -> dict:
        f = self.path / "metrics.json"
        return read_record(f) if f.exists() else {}

    def save_arrays(self, name: str, **arrays) -> Path:
        f = self.path / name
        f.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(f, **arrays)
        return f

    def load_arrays(self, name: str) -> dict[str, np.ndarray]:
        f = self.path / name
        if not f.is_file():
            raise ScarlabError(f"{f} is missing")
        with np.load(f, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def require_complete(self, what: str, stages: tuple[str, ...] = ()) -> "RunDir":
        """Raise a clear error unless this is a completed run with usable records (used on parent runs) made by one
        of ``stages``."""
        if not (self.path / "manifest.json").is_file():
            raise ScarlabError(f"{what} {self.path} is not a scarlab run directory (no manifest.json)")
        if self.status != "complete":
            raise ScarlabError(f"{what} {self.path} has status {self.status!r}; rerun that stage first")
        _ = self.config, self.metrics  # their fields are checked too: a bad one is a line here, before any work
        return self.require_role(what, stages)

    def require_role(self, what: str, stages: tuple[str, ...]) -> "RunDir":
        """Raise a clear error if this run was made by another stage than ``stages`` (a retrained run passed as
        the original would give a wrong AUS without a word); a folder without a manifest passes (not made yet)."""
        if not stages or not (self.path / "manifest.json").is_file():
            return self
        stage = self.manifest.get("stage")
        if stage not in stages:
            expected = " or ".join(repr(ROLES.get(s, s)) for s in stages)
            raise ScarlabError(f"{what} {self.path} has role {ROLES.get(stage, stage)!r} (stage {stage}); "
                               f"expected {expected}")
        return self

