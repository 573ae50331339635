"""What a run is and what it measured: the one reader of run directories.

Everything that shows runs — ``summary.csv`` / ``summary.md`` (:func:`summarize`), the compare notebook, the
CLI's closing reports and the dashboard — takes its meaning from here:

* :func:`describe` turns a run's ``manifest.json`` and ``config.json`` (plain dicts: the dashboard loads them
  through its own safe readers) into a :class:`RunInfo`: method, *variant* (the parameters that differ from the
  method's defaults on that data set, recorded in config.json by the stage that made the run), label
  (``scar · lr=2.5e-4``), forget set (recorded from the split), data set, model, seed and status;
* :data:`METRICS` is the table of metrics: key, label, how to show it, which direction is better and, for
  attacks, the chance level to read it against;
* :func:`aggregate` is the mean ± std per result identity (method, variant, data set, model, scenario) — two
  variants of a method are never averaged together — with one ± convention (:func:`pm`).

Intervals: a metric flagged ``interval`` (the U-LiRA audit's, see ``scarlab.audit``) may come with its own
confidence interval in ``<key>_low`` / ``<key>_high`` (level 1 − alpha, scarlab.metrics.ulira). The one convention
(:func:`pm`): ``mean ± std`` is the spread over runs; ``value [low, high]`` is one run's own interval. A table cell
shows the interval only where it stands for one run (a group of one run); a mean over several runs shows ± std and
no interval (the mean of per-run bounds is no interval of anything).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

from .errors import ScarlabError
from .runs import read_json, read_record, record_problem


# ============================================================================================ metrics
class Metric(NamedTuple):
    key: str
    """as in metrics.json."""
    label: str
    """column title for people."""
    scale: float = 1.0
    """shown as value × scale (100: per cent)."""
    digits: int = 3
    """decimals shown."""
    better: int = 0
    """+1 higher is better, -1 lower is better, 0 neither (read against the oracle or a chance level)."""
    chance: float | str | None = None
    """attacks: the chance level, a number or the key of a metric holding it."""
    summary: bool = True
    """a main column of summaries (False: kept in summary.csv, left out of the short tables)."""
    interval: bool = False
    """recorded with its own confidence interval in ``<key>_low`` / ``<key>_high`` (see :func:`pm`)."""


METRICS: tuple[Metric, ...] = (
    Metric("aus", "AUS", better=+1),
    Metric("acc/forget_train", "forget-train acc. %", 100, 2),
    Metric("acc/retain_train", "retain-train acc. %", 100, 2, better=+1),
    Metric("acc/forget_test", "forget-test acc. %", 100, 2),
    Metric("acc/retain_test", "retain-test acc. %", 100, 2, better=+1),
    Metric("acc/test", "test acc. %", 100, 2, better=+1),
    Metric("mia/svc/acc", "SVC MIA acc. % (paper's F1, micro)", 100, 2, chance="mia/svc/chance"),
    Metric("mia/svc/chance", "SVC MIA chance %", 100, 2),
    Metric("mia/loss_lr/acc", "loss-LR MIA acc. % (balanced, chance 50)", 100, 2, chance=0.5),
    Metric("privacy/score", "privacy score", 1, 3),
    Metric("time/unlearn_s", "unlearning time s", 1, 2, better=-1),
    Metric("mia/svc/delta_f1", "SVC MIA ΔF1 (HR, |F1 − 50|)", 1, 2, summary=False),
    Metric("mia/svc/member_f1", "SVC MIA member-F1 % (binary)", 100, 2, summary=False),
    Metric("mia/conf_thr/acc", "confidence-threshold MIA acc. % (balanced, chance 50)", 100, 2, chance=0.5,
           summary=False),
    Metric("privacy/eps", "privacy ε", 1, 3, summary=False),
    Metric("aus/a_or", "original retain-test (CR) / test (HR) acc. (AUS a_or)", 1, 3, summary=False),
    Metric("time/evaluate_s", "evaluation time s", 1, 2, summary=False),
    # the U-LiRA audit (scarlab.audit): held-out attack over K shadow pairs, with the t intervals of ulira. On the
    # forget examples it measures model-level distinguishability; forget − control is the membership signal.
    Metric("ulira/auc", "U-LiRA AUC, forget: model-level (chance 0.5)", 1, 3, chance=0.5, interval=True),
    Metric("ulira/tpr@0.01", "U-LiRA TPR @ 1 % FPR, forget (chance 1 %)", 100, 2, chance=0.01, interval=True),
    Metric("ulira/tpr@0.001", "U-LiRA TPR @ 0.1 % FPR, forget (chance 0.1 %)", 100, 2, chance=0.001, summary=False,
           interval=True),
    Metric("ulira/bacc", "U-LiRA balanced acc. %, forget (chance 50)", 100, 2, chance=0.5, summary=False,
           interval=True),
    Metric("ulira/eps_mean", "ε mean, forget (CP estimate)", 1, 2, summary=False, interval=True,
           chance="ulira/eps_chance"),
    Metric("ulira/eps_chance", "ε mean by chance (CP estimate, K pairs)", 1, 3, summary=False),
    Metric("ulira/eps_median", "ε median, forget (CP estimate)", 1, 2, summary=False, interval=True),
    Metric("ulira/control/auc", "U-LiRA AUC, control (never trained on; chance 0.5)", 1, 3, chance=0.5,
           summary=False, interval=True),
    Metric("ulira/control/tpr@0.01", "U-LiRA TPR @ 1 % FPR, control (chance 1 %)", 100, 2, chance=0.01,
           summary=False, interval=True),
    Metric("ulira/control/eps_mean", "ε mean, control (CP estimate)", 1, 2, summary=False, interval=True,
           chance="ulira/eps_chance"),
    Metric("ulira/membership/auc", "membership signal: AUC forget − control (none: 0)", 1, 3, chance=0.0,
           interval=True),
    Metric("ulira/membership/tpr@0.01", "membership signal: TPR @ 1 % FPR forget − control (none: 0)", 100, 2,
           chance=0.0, summary=False, interval=True),
    Metric("ulira/membership/eps_mean", "membership signal: mean ε forget − control (none: 0)", 1, 2, chance=0.0,
           summary=False, interval=True),
    Metric("ulira/member@0.01", "forget examples above the control's 99th pct. % (chance 1 %)", 100, 1,
           chance=0.01, summary=False),
    # the NeurIPS 2023 unlearning competition's scoring on the same shadows (scarlab.metrics.competition)
    Metric("competition/F", "competition forget score F (1: best)", 1, 3, better=+1, summary=False,
           chance="competition/F_chance"),
    Metric("competition/F_chance", "competition F of identical populations at K", 1, 3, summary=False),
    Metric("competition/F_control", "competition F on the control examples", 1, 3, summary=False),
    Metric("competition/score", "competition final score", 1, 3, better=+1, summary=False),
    # the offline audit (scarlab.audit.offline): the run's own model against the retrained shadows, forget vs control
    Metric("ulira/offline/lira/auc", "offline LiRA: this model's AUC forget vs control (membership; chance 0.5)", 1, 3,
           chance=0.5, summary=False, interval=True),
    Metric("ulira/offline/rmia/auc", "offline RMIA: this model's AUC forget vs control (membership; chance 0.5)", 1, 3,
           chance=0.5, summary=False, interval=True),
)
METRIC = {m.key: m for m in METRICS}
METRIC_KEYS = tuple(m.key for m in METRICS)
SUMMARY_KEYS = tuple(m.key for m in METRICS if m.summary)
INTERVAL_KEYS = tuple(f"{m.key}{end}" for m in METRICS if m.interval for end in ("_low", "_high"))
"""the ``_low`` / ``_high`` columns of the metrics recorded with an interval (summary.csv holds them too)."""
ID_COLUMNS = ("label", "method", "variant", "dataset", "model", "scenario", "forget_classes", "seed")
GROUP_KEYS = ("label", "method", "variant", "dataset", "model", "scenario")
METHOD_ORDER = ("original", "retrained")  # first in summaries, then methods in order of appearance


def chance_of(key: str, values: dict) -> float | None:
    """The chance level an attack metric is read against (None for other metrics or when unrecorded)."""
    c = METRIC[key].chance if key in METRIC else None
    if isinstance(c, str):
        v = values.get(c)
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None
    return c


def fmt(key: str, value) -> str:
    """One value in its metric's unit (``–`` when missing)."""
    m = METRIC.get(key, Metric(key, key))
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "–"
    return f"{v * m.scale:.{m.digits}f}" if math.isfinite(v) else "–"


def pm(key: str, mean, std=None, low=None, high=None) -> str:
    """``mean ± std`` in the metric's unit: the one ± convention of every table (std is the sample std over
    runs; a chance level is a property of the attack's sets, shown without ±). Given ``low`` and ``high`` (one
    run's own confidence interval, both finite): ``value [low, high]`` instead, never both."""
    s = fmt(key, mean)
    if s == "–" or key.endswith("/chance"):
        return s
    lo, hi = fmt(key, low), fmt(key, high)
    if lo != "–" and hi != "–":
        return f"{s} [{lo}, {hi}]"
    if std is None:
        return s
    sd = fmt(key, std)
    return s if sd == "–" else f"{s} ± {sd}"


def interval(key: str, values: dict) -> tuple[float, float] | None:
    """``(low, high)`` of a metric from ``values`` (``<key>_low`` / ``<key>_high``, both finite) or None."""
    lo, hi = _num(values.get(f"{key}_low")), _num(values.get(f"{key}_high"))
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else None


# ============================================================================================ variants
def format_value(v) -> str:
    """Short, exact text of a parameter value: 0.00025 -> 2.5e-4, 5.0 -> 5, True -> true."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if v == int(v) and abs(v) < 1e6:
            return str(int(v))
        if abs(v) < 1e-3 or abs(v) >= 1e6:
            mant, exp = f"{v:.6e}".split("e")
            return f"{mant.rstrip('0').rstrip('.')}e{int(exp)}"
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return ",".join(format_value(x) for x in v)
    return str(v)


def variant_label(method: str, variant: dict | None) -> str:
    """``scar`` or ``scar · lr=2.5e-4 · epochs=3``: what a result is, in the order the parameters are declared."""
    parts = [f"{k}={format_value(v)}" for k, v in (variant or {}).items()]
    return " · ".join([method] + parts)


# ============================================================================================ what a run is
@dataclass
class RunInfo:
    path: str
    stage: str = "?"
    status: str = "missing"
    """complete, running, failed, or: missing, unreadable, invalid (a field of the wrong type: see ``error``), not
    evaluated, evaluation failed."""
    error: str | None = None
    method: str = "?"
    variant: dict = field(default_factory=dict)
    label: str = "?"
    dataset: str | None = None
    model: str | None = None
    scenario: str = ""
    forget_classes: list = field(default_factory=list)
    forget_size: int | None = None
    seed: int | None = None
    created: float | None = None
    parents: dict = field(default_factory=dict)
    shadow: bool = False
    """a member of a U-LiRA shadow population (its manifest has a ``shadow`` entry): readers usually leave it out."""

    @property
    def forget(self) -> str:
        """``class 3``, ``classes 0,3``, ``300 random`` or ``''``."""
        if self.scenario == "CR" and self.forget_classes:
            return ("class " if len(self.forget_classes) == 1 else "classes ") + classes_text(self.forget_classes)
        if self.scenario == "HR":
            return f"{self.forget_size} random" if self.forget_size else "random"
        return ""

    @property
    def variant_text(self) -> str:
        return " · ".join(f"{k}={format_value(v)}" for k, v in self.variant.items())


def classes_text(classes) -> str:
    return ",".join(str(int(c)) for c in (classes or []))


STAGE_METHOD = {"train_original": "original", "train_retrained": "retrained", "split": "split"}
EVALUATED_IN_PLACE = ("train_retrained", "unlearn", "evaluate")  # an original is evaluated into its own run


def describe(path, manifest: dict | None, config: dict | None, metrics: dict | None = None) -> RunInfo:
    """A run from its already-read ``manifest.json``, ``config.json`` (and ``metrics.json``, to tell an evaluated
    run from one that was not). Pure: it opens nothing, so readers with their own safety rules can use it.

    Every field is checked before it is used (``scarlab.runs.record_problem``): a record with a field of the wrong
    type makes the run ``invalid``, with that one-line problem as its error and nothing else read from it."""
    info = RunInfo(path=str(path))
    if not isinstance(manifest, dict):
        return info
    records = (("manifest.json", manifest), ("config.json", config), ("metrics.json", metrics))
    problem = next(filter(None, (record_problem(n, d) for n, d in records if isinstance(d, dict))), None)
    if problem:
        info.status, info.error = "invalid", problem
        return info
    cfg = config if isinstance(config, dict) else {}
    info.stage = manifest.get("stage") or "?"
    info.status = manifest.get("status") or "unknown"
    info.error = manifest.get("error") or None
    info.created = manifest.get("created")
    info.parents = dict(manifest.get("parents") or {})
    info.shadow = bool(manifest.get("shadow"))
    # an in-place evaluation records its outcome in the pipeline's stage entry and/or evaluate_run's own section
    stages = manifest.get("stages") or {}
    evaluation = [e for e in (stages.get("evaluate"), manifest.get("evaluation")) if isinstance(e, dict)]
    failed = next((e for e in evaluation if e.get("status") == "failed"), None)
    if info.status == "complete" and failed is not None:
        info.status, info.error = "evaluation failed", str(failed.get("error") or "") or None
    elif (info.status == "complete" and metrics is not None and "aus" not in metrics
          and info.stage in EVALUATED_IN_PLACE):
        info.status = "not evaluated"
    info.method = cfg.get("method") or STAGE_METHOD.get(info.stage) or info.stage
    info.variant = dict(cfg.get("variant") or {})
    info.label = variant_label(info.method, info.variant)
    info.dataset = cfg.get("dataset")
    info.model = cfg.get("model")
    if info.stage != "train_original":
        info.scenario = cfg.get("scenario") or ""
        fc = cfg.get("forget_classes") or []
        info.forget_classes = list(fc) if info.scenario == "CR" else []
        info.forget_size = cfg.get("forget_size")
    info.seed = cfg.get("seed")
    return info


def read_run(path) -> tuple[RunInfo, dict]:
    """(RunInfo, metrics) of a run directory, reading its JSON files; never raises for a broken run."""
    p = Path(path)
    docs = {}
    for name in ("manifest", "config", "metrics"):
        f = p / f"{name}.json"
        if not f.exists():
            docs[name] = None
            continue
        try:
            docs[name] = read_json(f)
        except (ScarlabError, OSError, ValueError) as exc:
            return RunInfo(path=str(p), status="unreadable", error=f"{type(exc).__name__}: {exc}"), {}
    if docs["manifest"] is None:
        return RunInfo(path=str(p), error=f"no manifest.json in {p}"), {}
    metrics = docs["metrics"] or {}
    info = describe(p, docs["manifest"], docs["config"], metrics)
    if info.status == "invalid":
        return info, {}
    if (not info.dataset or not info.model) and info.parents.get("original"):
        try:  # an evaluation of the original against a split records the original as its parent
            ocfg = read_record(Path(info.parents["original"]) / "config.json")
            info.dataset, info.model = info.dataset or ocfg.get("dataset"), info.model or ocfg.get("model")
        except (ScarlabError, OSError, ValueError):
            pass
    return info, metrics


# ============================================================================================ tables
def _num(v) -> float:
    try:
        return float(v) if v is not None and not isinstance(v, bool) else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def row(info: RunInfo, metrics: dict) -> dict:
    """One summary row: identity, status, every metric of :data:`METRICS` (NaN when unrecorded), run, error."""
    out = {"label": info.label, "method": info.method, "variant": info.variant_text, "dataset": info.dataset,
           "model": info.model, "scenario": info.scenario, "forget_classes": classes_text(info.forget_classes),
           "seed": info.seed, "status": info.status}
    out.update({k: _num(metrics.get(k)) for k in METRIC_KEYS + INTERVAL_KEYS})
    out.update(run=info.path, error=info.error)
    return out


def frame(rows: list[dict]):
    """The per-run table, ordered original, retrained, then methods as they appear; variants kept apart."""
    import pandas as pd

    cols = list(ID_COLUMNS) + ["status"] + list(METRIC_KEYS) + list(INTERVAL_KEYS) + ["run", "error"]
    df = pd.DataFrame(rows, columns=cols)
    df["seed"] = pd.array([None if r.get("seed") is None else int(r["seed"]) for r in rows], dtype="Int64")
    if len(df):
        rank = _rank(list(df["method"].fillna("?")))
        order = sorted(range(len(df)), key=lambda i: (rank.get(df["method"].iloc[i] or "?", len(rank)),
                                                       str(df["variant"].iloc[i]), str(df["forget_classes"].iloc[i]),
                                                       str(df["seed"].iloc[i])))
        df = df.iloc[order].reset_index(drop=True)
    return df


def _rank(methods) -> dict:
    seen = [m for m in METHOD_ORDER if m in methods] + [m for m in dict.fromkeys(methods) if m not in METHOD_ORDER]
    return {m: i for i, m in enumerate(seen)}


def aggregate(df, keys: tuple[str, ...] = GROUP_KEYS, metrics: tuple[str, ...] = METRIC_KEYS):
    """Mean ± std per result identity over the completed runs of a :func:`frame`.

    Every metric column holds the mean and ``<metric>/std`` the sample std (0 for one run) over forget classes and
    seeds (``scarlab.metrics.mean_std``); a metric with an interval also gets ``<metric>_low`` / ``_high``, that
    run's interval where the group is one run, else NaN (see :func:`pm`). ``aus`` follows the paper: AUS of the mean accuracies with first-order
    propagated errors, falling back to mean ± std of the per-run AUS where a_or is unknown. ``runs`` counts the
    runs; ``forget_classes`` and ``seeds`` list what they cover.
    """
    from .metrics import mean_std  # scikit-learn and scipy: imported when a table is made, not at start-up

    import pandas as pd

    ok = df[df["status"] == "complete"] if len(df) else df
    keys = [k for k in keys if k in df.columns]
    metrics = [m for m in metrics if m in df.columns]
    rows = []
    if len(ok):
        rank = _rank(list(ok["method"]))
        groups = sorted(ok.groupby(keys, sort=False, dropna=False),
                        key=lambda kv: rank.get(kv[1]["method"].iloc[0], len(rank)))
        for key, g in groups:
            out = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
            out["runs"] = len(g)
            if "forget_classes" not in keys:  # the forget sets a group covers
                out["forget_classes"] = "; ".join(dict.fromkeys(str(v) for v in g["forget_classes"] if v is not None))
            out["seeds"] = ",".join(dict.fromkeys(str(v) for v in g["seed"] if v is not None and v == v))
            for m in metrics:
                v = g[m].astype(float).dropna().to_numpy()
                u = mean_std(v) if len(v) else None
                out[m] = u.nominal_value if u is not None else float("nan")
                out[f"{m}/std"] = u.std_dev if u is not None else float("nan")
                if f"{m}_low" in g and f"{m}_high" in g:
                    one = len(g) == 1
                    out[f"{m}_low"] = float(g[f"{m}_low"].iloc[0]) if one else float("nan")
                    out[f"{m}_high"] = float(g[f"{m}_high"].iloc[0]) if one else float("nan")
            if "aus" in metrics:
                u = _group_aus(g, g["scenario"].iloc[0] if "scenario" in g else None)
                if u is not None:
                    out["aus"], out["aus/std"] = u.nominal_value, u.std_dev
            rows.append(out)
    cols = keys + ["runs"] + (["forget_classes"] if "forget_classes" not in keys else []) + ["seeds"] \
        + [c for m in metrics for c in (m, f"{m}/std")] \
        + [c for m in metrics if f"{m}_low" in df.columns and f"{m}_high" in df.columns
           for c in (f"{m}_low", f"{m}_high")]
    # a bound also asked for as a metric of its own would be a second column of that name
    return pd.DataFrame(rows, columns=list(dict.fromkeys(cols)))


def _group_aus(g, scenario):
    from .metrics import aus_with_uncertainty

    cols = ("acc/retain_test", "acc/forget_test") if scenario == "CR" else ("acc/test", "acc/forget_train")
    if scenario not in ("CR", "HR") or not all(c in g for c in ("aus/a_or", *cols)):
        return None
    sub = g[["aus/a_or", *cols]].astype(float).dropna()
    if len(sub) != len(g) or not len(sub):
        return None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using UFloat objects with std_dev==0")
        return aus_with_uncertainty(sub["aus/a_or"].to_numpy(), sub[cols[0]].to_numpy(), sub[cols[1]].to_numpy(),
                                    scenario)


def pm_table(agg, metrics: tuple[str, ...] = SUMMARY_KEYS, keys: tuple[str, ...] = ("label", "dataset", "model",
             "scenario", "runs"), titles: Callable[[str], str] | None = None):
    """The aggregate as text cells (``mean ± std`` in each metric's unit; ``value [low, high]`` where a group of
    one run recorded an interval), columns titled by METRICS labels."""
    import pandas as pd

    shown = [m for m in metrics if m in agg.columns and agg[m].notna().any()]
    title = titles or (lambda k: METRIC[k].label if k in METRIC else k)
    out = pd.DataFrame({k: agg[k].astype(str) for k in keys if k in agg.columns})
    for m in shown:
        none = [None] * len(agg)
        out[title(m)] = [pm(m, a, s, lo, hi) for a, s, lo, hi in
                         zip(agg[m], agg.get(f"{m}/std", none), agg.get(f"{m}_low", none), agg.get(f"{m}_high", none))]
    return out


def _markdown(agg, runs) -> str:
    lines = ["# Summary", "",
             "Mean ± std over forget classes and seeds, one row per method *variant* (the parameters that differ "
             "from the method's defaults; variants are never averaged together); accuracies and attack accuracies "
             "in %, AUS with propagated error, time in seconds.", "",
             "Read each attack accuracy against its chance level, never against 50 % alone. SVC MIA: the paper's "
             "attack; its accuracy is the paper's F1 (micro-F1 = accuracy), its chance the majority fraction of "
             "its evaluation set (CR: up to 3 members per non-member, 75 %; HR: 1:1, 50 %). The loss-LR attack is "
             "balanced: chance 50 %.", ""]
    if len(agg):
        table = pm_table(agg)
        lines += ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
        lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in table.itertuples(index=False)]
    else:
        lines.append("No completed, evaluated runs.")
    bad = runs[runs["status"] != "complete"] if len(runs) else runs
    if len(bad):
        lines += ["", "## Runs not included", "", "| run | result | status | error |", "|---|---|---|---|"]
        for _, r in bad.iterrows():
            err = "" if r["error"] is None or r["error"] != r["error"] else str(r["error"])
            err = err.replace("|", "\\|").replace("\n", " ")[:200]
            label = "?" if r["label"] is None or r["label"] != r["label"] else r["label"]
            lines.append(f"| {r['run']} | {label} | {r['status']} | {err} |")
    return "\n".join(lines) + "\n"


def summarize(run_paths, out_dir):
    """Summary of evaluated runs; returns the per-run DataFrame (aggregate rows in ``df.attrs["aggregate"]``).

    Files written to ``out_dir`` (created if needed):

    * ``summary.csv``: one row per run — ``label`` (``scar · lr=2.5e-4``), ``method`` (original | retrained | the
      registered method), ``variant`` (its parameters that differ from the defaults, as text), ``dataset``,
      ``model``, ``scenario``, ``forget_classes`` (``"3"``, ``"0,3"``, from the split; empty for HR; read it back
      with ``pd.read_csv(..., dtype={"forget_classes": str})``), ``seed``, ``status``, every metric of
      :data:`METRICS` (fractions, keys as in ``metrics.json``), ``run`` (its path) and ``error``. Runs that failed,
      are still running, are missing, were never evaluated or whose evaluation failed are listed with that
      ``status`` and left out of the aggregates.
    * ``summary_agg.csv``: mean ± std per result identity, see :func:`aggregate`.
    * ``summary.md``: those rows in the paper's look (accuracies in %, the SVC attack's chance beside its accuracy),
      plus the runs left out with their status and error.
    """
    from .runs import replacing

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = frame([row(*read_run(p)) for p in run_paths])
    agg = aggregate(df)
    for name, write in (("summary.csv", lambda f: df.to_csv(f, index=False)),
                        ("summary_agg.csv", lambda f: agg.to_csv(f, index=False)),
                        ("summary.md", lambda f: f.write_text(_markdown(agg, df)))):
        with replacing(out / name) as tmp:
            write(tmp)
    df.attrs["aggregate"] = agg
    return df


def read_summary(path):
    """``summary.csv`` as written by :func:`summarize` (forget classes kept as text: "0,3" is not a number)."""
    import pandas as pd

    return pd.read_csv(path, dtype={"forget_classes": str, "variant": str, "label": str},
                       keep_default_na=True).fillna({"variant": "", "forget_classes": ""})
