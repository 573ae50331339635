"""`scarlab` command line: one module per sub-command under ``scarlab.commands``.

Every user mistake raises ``ScarlabError``; it is printed as one line (no traceback) with exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

from .errors import ScarlabError

# Sub-command modules, each exposing ``register(subparsers)``; order = order in --help.
COMMANDS = ["train", "split", "unlearn", "stats", "surrogate", "pipeline", "sweep", "demo", "lab", "evaluate", "embed", "dashboard"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scarlab", description="A lab for machine unlearning built around SCAR.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"scarlab.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    # SIGTERM ends a command like Ctrl-C does: the stage being written is marked failed ("interrupted"), never
    # left "running" (long commands install their own graceful handlers on top of this)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        if os.environ.get("SCARLAB_THREADS"):
            import torch
            torch.set_num_threads(int(os.environ["SCARLAB_THREADS"]))
        return args.func(args) or 0
    except ScarlabError as exc:
        print(f"scarlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("scarlab: interrupted", file=sys.stderr)
        return 130


def _terminate(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
