"""Options shared by sub-commands, so names stay the same across the CLI."""
from __future__ import annotations

import argparse
import dataclasses
import typing

from ..errors import ScarlabError


def forget_classes(values: list[str] | None) -> list[int]:
    """Accept ``--forget-classes 0 1`` and ``--forget-classes 0,1``."""
    out = []
    for v in values or []:
        for part in str(v).split(","):
            if part.strip():
                try:
                    out.append(int(part))
                except ValueError:
                    raise ScarlabError(f"forget class {part!r} is not an integer class index") from None
    return out


def add_data(p: argparse.ArgumentParser, dataset_default: str | None = "digits") -> None:
    p.add_argument("--dataset", default=dataset_default,
                   help="digits (embedded), cifar10, cifar100, tinyimagenet or imagefolder:PATH")
    p.add_argument("--data-root", default=None, help="where torchvision / Tiny-ImageNet data live")


def add_split(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", default="CR", help="CR (class removal) or HR (random samples)")
    p.add_argument("--forget-classes", nargs="*", default=[], help="CR: class indices, e.g. 0 or 0,3")
    p.add_argument("--forget-size", type=int, default=None, help="HR: how many random training images")
    p.add_argument("--seed", type=int, default=0, help="random seed")


def add_run(p: argparse.ArgumentParser, out_help: str = "run directory to create") -> None:
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def parse_value(text: str, typ):
    """Parse a command-line string into a dataclass field's type (bool, int, float, str, Optional)."""
    if isinstance(typ, str):
        typ = {"int": int, "float": float, "bool": bool, "str": str}.get(typ.split(" |")[0], str)
    args = [a for a in typing.get_args(typ) if a is not type(None)]
    if args:
        typ = args[0]
    if typ is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ScarlabError(f"expected true or false, got {text!r}")
    try:
        return typ(text)
    except (TypeError, ValueError):
        raise ScarlabError(f"expected a {typ.__name__}, got {text!r}") from None


def extra_params(extra: list[str], params_cls) -> dict:
    """Turn leftover ``--name value`` pairs into typed hyper-parameters of ``params_cls``."""
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    hints = typing.get_type_hints(params_cls)
    out, i = {}, 0
    while i < len(extra):
        tok = extra[i]
        if not tok.startswith("--"):
            raise ScarlabError(f"unexpected argument {tok!r}")
        name, _, value = tok[2:].partition("=")
        name = name.replace("-", "_")
        if name not in fields:
            raise ScarlabError(f"unknown option --{name.replace('_', '-')}; this method's parameters: "
                               + ", ".join("--" + n.replace("_", "-") for n in fields))
        if not value:
            if i + 1 >= len(extra):
                raise ScarlabError(f"--{name.replace('_', '-')} needs a value")
            value, i = extra[i + 1], i + 1
        try:
            out[name] = parse_value(value, hints.get(name, str))
        except ScarlabError as exc:
            raise ScarlabError(f"--{name.replace('_', '-')}: {exc}") from None
        i += 1
    return out


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
        print(f"\nsummary ({result.summary_csv}):")
        print(df[[c for c in cols if c in df.columns]].to_string(index=False, float_format=lambda v: f"{v:.{digits}f}"))
    elif getattr(getattr(result, "config", None), "evaluate", False):
        print("no summary was written (the compare stage did not complete)")
