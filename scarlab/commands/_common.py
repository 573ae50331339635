"""What the sub-commands share: options generated from configuration dataclasses, and closing reports."""
from __future__ import annotations

import argparse
import dataclasses
import inspect

from .. import schema
from ..errors import ScarlabError


def add_parser(sub, name: str, cls, help: str, *, positional: tuple[str, ...] = (), run_options: bool = False,
               defaults: dict | None = None, aliases: dict | None = None, **kw) -> argparse.ArgumentParser:
    """A sub-command whose options are the fields of ``cls`` (plus ``--config FILE``, and the run options
    ``--out``, ``--overwrite``, ``--quiet`` when it creates a run directory)."""
    p = sub.add_parser(name, help=help, description=kw.pop("description", None) or inspect.cleandoc(cls.__doc__ or help),
                       formatter_class=argparse.RawDescriptionHelpFormatter, **kw)
    for name_ in positional:
        _, is_list = schema.kind(schema.hints(cls)[name_])
        p.add_argument(name_, nargs="*" if is_list else "?", default=argparse.SUPPRESS,
                       metavar=name_.rstrip("s").upper(), help=schema.field_docs(cls).get(name_, ""))
    schema.add_options(p, cls, skip=positional, defaults=defaults, aliases=aliases)
    if run_options:
        from ..config import RunOptions
        schema.add_options(p, RunOptions)
    schema.add_config(p)
    p.set_defaults(config_cls=cls, run_options=run_options)
    return p


def options(args, *extra_keys: str) -> tuple[object, object | None]:
    """(the command's configuration, its RunOptions or None) from defaults < --config file < command line."""
    from ..config import RunOptions

    cls = args.config_cls
    data = schema.load_file(args.config) if args.config else {}
    extra = {k: data.pop(k) for k in list(data) if k in extra_keys}
    run_names = [f.name for f in dataclasses.fields(RunOptions)] if args.run_options else []
    run_file = {k: data.pop(k) for k in list(data) if k in run_names}
    names = [f.name for f in dataclasses.fields(cls)] + run_names + list(extra_keys)
    schema.unknown_keys(data, names, f"config file {args.config}")
    cfg = schema.build(cls, data, schema.given(args, cls))
    run = schema.build(RunOptions, run_file, schema.given(args, RunOptions)) if args.run_options else None
    if run is not None and not run.out:
        raise ScarlabError("--out is required: the run directory to create")
    args.config_extra = extra
    return cfg, run


def require_runs(runs, usage: str, what: str = "at least one run directory"):
    """The command's positional run directories; none is a one-line error with the command's usage line."""
    if not runs:
        raise ScarlabError(f"give {what}: scarlab {usage}")
    return runs


def print_metrics(metrics: dict) -> None:
    for k, v in metrics.items():
        print(f"  {k:28s} {v:.4f}" if isinstance(v, float) else f"  {k:28s} {v}")


def report(result, what: str, cols: tuple[str, ...], digits: int = 4) -> None:
    """The closing lines of `pipeline`, `sweep` and `demo`: stage counts, failures, then the summary columns."""
    n = {st: len(result.by_status(st)) for st in ("complete", "skipped", "failed", "blocked")}
    print(f"{what} finished in {result.wall_s:.1f}s: {n['complete']} executed, {n['skipped']} reused, "
          f"{n['failed']} failed, {n['blocked']} blocked (a dependency failed)")
    for s in result.failed:
        print(f"  FAILED {s.label}: {s.error}\n         see {s.run_dir}")
    df = result.summary()
    if df is not None:
        cols = ("label",) + tuple(c for c in cols if c not in ("label", "method"))  # method · variant
        print(f"\nsummary ({result.summary_csv}):")
        print(df[[c for c in cols if c in df.columns]].to_string(index=False, float_format=lambda v: f"{v:.{digits}f}"))
    elif getattr(getattr(result, "config", None), "evaluate", False):
        print("no summary was written (the compare stage did not complete)")


def forget_classes(values) -> list[int]:
    """``0 3`` / ``0,3`` / ``[0, 3]`` as class indices."""
    return schema.coerce(values or [], list[int], "forget classes")
