"""`scarlab` command line: one module per sub-command under ``scarlab.commands``.

Every user mistake raises ``ScarlabError``; it is printed as one line (no traceback) with exit status 2, and so is
a full or read-only disk (``errors.disk_error``).
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import os
import signal
import sys

from .errors import ScarlabError, disk_error

# Sub-command modules, each exposing ``register(subparsers)``; order = order in --help.
COMMANDS = ["train", "split", "unlearn", "stats", "surrogate", "pipeline", "sweep", "demo", "lab", "evaluate", "embed",
            "audit", "dashboard", "export", "import", "jobs"]
NO_TORCH = {"dashboard", "export", "jobs", "lab"}
"""commands that only read files or start other processes (which set their own torch threads): no torch threads to
set, so the command line leaves torch unloaded"""


def build_parser(argv: list[str] | None = None, only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; ``argv`` lets a command add options that depend on others (``unlearn --method``);
    ``only``: that one command (what running it needs: the other commands' modules are not imported)."""
    parser = argparse.ArgumentParser(prog="scarlab", description="A lab for machine unlearning built around SCAR.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS if only is None else [only]:
        register = importlib.import_module(f"scarlab.commands.{name}").register
        if "argv" in inspect.signature(register).parameters:
            register(sub, argv=argv)
        else:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv, only=argv[0] if argv and argv[0] in COMMANDS else None)
    args, extra = parser.parse_known_args(argv)
    # SIGTERM ends a command like Ctrl-C does: the stage being written is marked failed ("interrupted"), never
    # left "running" (long commands install their own graceful handlers on top of this)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        if extra and not getattr(args, "accepts_extra", False):
            _unrecognized(parser, args, extra)
        args.extra = extra
        if os.environ.get("SCARLAB_THREADS") and args.command not in NO_TORCH:
            import torch
            torch.set_num_threads(int(os.environ["SCARLAB_THREADS"]))
        return args.func(args) or 0
    except ScarlabError as exc:
        print(f"scarlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("scarlab: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a full or read-only disk is one line too; any other OSError is a bug to report
        if disk_error(exc) is None:
            raise
        print(f"scarlab: error: {disk_error(exc)}", file=sys.stderr)
        return 2


def _unrecognized(parser, args, extra: list[str]) -> None:
    """Unknown options: one line naming the first one and the nearest valid option of that command."""
    from .schema import nearest

    sub = next((a.choices.get(args.command) for a in parser._subparsers._group_actions), None)
    valid = [o for a in (sub._actions if sub else []) for o in a.option_strings]
    first = next((e.split("=")[0] for e in extra if e.startswith("-")), extra[0])
    hint = nearest(first, valid)
    if args.command == "unlearn" and not hint:
        hint = f" (not a parameter of {getattr(args, 'method', None) or 'this method'})"
    raise ScarlabError(f"unrecognized argument {first!r} for `scarlab {args.command}`{hint}; "
                       f"see scarlab {args.command}{' --method ' + args.method if args.command == 'unlearn' and getattr(args, 'method', None) else ''} --help")


def _terminate(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
