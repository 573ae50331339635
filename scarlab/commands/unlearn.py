"""`scarlab unlearn`: run one registered method on an original model.

The chosen method's hyper-parameters are options too (``--lr 2.5e-4``); ``scarlab unlearn --method NAME --help``
lists them with their effective default on each data set.
"""
from __future__ import annotations

import argparse
import dataclasses

from ..config import UnlearnConfig
from . import _common

PARAM = "param:"  # namespace prefix of the method's hyper-parameters


def chosen_method(argv: list[str] | None) -> str:
    """The method named by ``--method`` (or by the ``--config`` file) in the command line, else scar."""
    from .. import schema

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method")
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv or [])
    if known.method:
        return known.method
    if known.config:
        try:
            return str(schema.load_file(known.config).get("method") or "scar")
        except Exception:  # noqa: BLE001 - a broken file is reported when the command runs
            return "scar"
    return "scar"


def _methods_epilog() -> str:
    from ..unlearn import METHODS

    lines = ["methods (scarlab unlearn --method NAME --help lists NAME's parameters):"]
    lines += [f"  {name} [needs {'+'.join(sorted(spec.needs))}]: {spec.summary}" for name, spec in METHODS.items()]
    return "\n".join(lines)


def register(sub, argv: list[str] | None = None) -> None:
    from .. import schema
    from ..unlearn import METHODS

    p = _common.add_parser(sub, "unlearn", UnlearnConfig, "unlearn with a registered method (scar, scar_self, "
                           "baselines)", run_options=True, aliases={"original": ["--from"], "retain_available": ["--no-retain"]}, epilog=_methods_epilog())
    method = chosen_method(argv)
    spec = METHODS.get(method)
    if spec is not None:
        shown = schema.effective_defaults(spec.params, lambda ds: spec.make_params({}, ds))
        schema.add_options(p, spec.params, prefix=PARAM, defaults=shown,
                           title=f"{method} parameters ({spec.summary})")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import schema
    from ..errors import ScarlabError, choose
    from ..unlearn import METHODS
    from ..unlearn.stage import run_unlearn

    # a config file may hold the method's parameters under params: or at the top level, as on the command line
    every_param = sorted({f.name for spec in METHODS.values() for f in dataclasses.fields(spec.params)})
    cfg, opts = _common.options(args, *every_param)
    choose("method", cfg.method, METHODS)
    params = {**cfg.params, **args.config_extra, **schema.given(args, METHODS[cfg.method].params, prefix=PARAM)}
    cfg = dataclasses.replace(cfg, params=schema.typed(METHODS[cfg.method].params, params, f"{cfg.method} parameters"))
    if not cfg.original:
        raise ScarlabError("--from is required: the run directory of the original model")
    run_dir = run_unlearn(cfg, opts.out, overwrite=opts.overwrite, progress=not opts.quiet)
    print(f"{cfg.method} finished: {run_dir.path}")
    _common.print_metrics(run_dir.metrics)
    return 0
