"""Command-line options and config files generated from configuration dataclasses (one declaration per option).

A configuration is a dataclass whose fields each carry a docstring (the string right below the field). From it:

* :func:`add_options` adds one ``--field-name`` per field to an argparse parser: the help is the field's docstring
  followed by its *effective* default, per data set where data sets differ (``[default: 0.001 on digits; 0.0005
  on cifar10, cifar100, tinyimagenet]``); booleans take ``--name``, ``--name false`` and ``--no-name``; lists take
  several values or one comma-separated value;
* :func:`load_file` reads a ``--config FILE`` (YAML or JSON) holding the same keys, refusing an unknown key with
  the nearest valid name and a syntax error with its file, line and column;
* :func:`build` makes the dataclass from defaults < the file < the command line, every value typed.

Why not a library such as tyro or jsonargparse: both show a field's declared default (``None``), not the value a
run on a given data set will use, and scarlab's ``unlearn`` adds the chosen method's own parameters at parse time;
this module is the small generator those two needs call for, over the standard library's argparse.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import functools
import inspect
import math
import textwrap
import typing
from pathlib import Path
from typing import Callable, Iterable

from .errors import ScarlabError

DATASETS = ("digits", "cifar10", "cifar100", "tinyimagenet")
"""the data sets whose effective defaults the help shows (imagefolder:PATH takes the generic ones)."""


# ============================================================================================ declarations
@functools.lru_cache(maxsize=None)
def field_docs(cls) -> dict[str, str]:
    """{field: its docstring, whitespace folded}, inherited fields included."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        except (OSError, TypeError, SyntaxError, IndexError):
            continue
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def kind(typ) -> tuple[type, bool]:
    """(base type, is a list) of a field annotation; Optional is unwrapped."""
    origin = typing.get_origin(typ)
    args = [a for a in typing.get_args(typ) if a is not type(None)]
    if origin in (list, tuple) or typ in (list, tuple):
        return (args[0] if args else str), True
    if origin is dict or typ is dict:
        return dict, False
    if args and origin is not None:  # X | None, Optional[X]
        return kind(args[0])
    return (typ if isinstance(typ, type) else str), False


def hints(cls) -> dict:
    return typing.get_type_hints(cls)


def option(name: str) -> str:
    return "--" + name.replace("_", "-")


# ============================================================================================ values
def parse_value(text: str, typ, what: str):
    """A command-line or config-file string as ``typ`` (bool, int, float, str; 'none'/'null' for Optional)."""
    base, _ = kind(typ)
    if isinstance(text, str) and text.lower() in ("none", "null") and type(None) in typing.get_args(typ):
        return None
    if base is bool:
        if str(text).lower() in ("1", "true", "yes", "on"):
            return True
        if str(text).lower() in ("0", "false", "no", "off"):
            return False
        raise ScarlabError(f"{what}: expected true or false, got {text!r}")
    try:
        value = base(text)
    except (TypeError, ValueError):
        wanted = {int: "an integer", float: "a number"}.get(base, f"a {base.__name__}")
        raise ScarlabError(f"{what}: {text!r} is not {wanted}") from None
    return coerce(value, base, what)  # a parsed float is checked as a file's would be (inf and nan refused)


def coerce(value, typ, what: str):
    """A value from a file or the command line checked against a field's type (strings are parsed; an int is a
    valid float; a list where one value belongs, or a value of another type, is an error naming ``what``)."""
    base, is_list = kind(typ)
    if value is None:
        if type(None) in typing.get_args(typ):
            return None
        raise ScarlabError(f"{what} needs a value (it cannot be null)")
    if is_list:
        items = value if isinstance(value, (list, tuple)) else [value]
        out = []
        for v in items:  # "0,3" on a command line or in a file: two values
            parts = [p for p in v.split(",") if p.strip()] if isinstance(v, str) and base is not str else [v]
            out += [coerce(p, base, what) for p in parts]
        return out
    if base is dict:
        if not isinstance(value, dict):
            raise ScarlabError(f"{what} must be a mapping of names to values, got {value!r}")
        return value
    if isinstance(value, (list, tuple, dict)):
        raise ScarlabError(f"{what} takes one value, got a {type(value).__name__} ({value!r})")
    if isinstance(value, str) and base is not str:
        return parse_value(value.strip(), typ, what)
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is float and isinstance(value, float) and not math.isfinite(value):
        raise ScarlabError(f"{what} must be a finite number, got {value!r}")
    if not isinstance(value, base) or (base is int and isinstance(value, bool)):
        wanted = {str: "a text value", int: "a whole number", float: "a number", bool: "true or false"}.get(base, base)
        raise ScarlabError(f"{what} must be {wanted}, got {value!r}")
    return value


def nearest(name: str, valid: Iterable[str]) -> str:
    """`` (did you mean lr?)`` or ``''``."""
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def unknown_keys(data: dict, valid: Iterable[str], what: str) -> None:
    """Refuse the first unknown key with the nearest valid name and the list of valid ones."""
    valid = sorted(valid)
    for key in data:
        if key not in valid:
            raise ScarlabError(f"{what}: unknown key {key!r}{nearest(str(key), valid)}; valid: {', '.join(valid)}")


def load_file(path: str | Path, what: str = "config file") -> dict:
    """The mapping in a YAML (or JSON) file; keys may use dashes."""
    import yaml

    p = Path(path).expanduser()
    if not p.is_file():
        raise ScarlabError(f"{what} {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ScarlabError(f"{what} {p} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScarlabError(f"{what} {p} is not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ScarlabError(f"{what} {p} must hold a mapping of options (name: value), got a {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def typed(cls, data: dict, what: str | None = None) -> dict:
    """``data`` with every value checked against the type of its field of ``cls``; unknown keys are refused with
    the nearest valid name."""
    unknown_keys(data, [f.name for f in dataclasses.fields(cls)], what or cls.__name__)
    types = hints(cls)
    return {k: coerce(v, types[k], k) for k, v in data.items()}


def build(cls, *layers: dict, what: str | None = None):
    """``cls`` from its defaults overridden by each layer in turn (a config file, then the command line)."""
    merged: dict = {}
    for layer in layers:
        merged.update(typed(cls, layer, what))
    return check_bounds(cls(**merged))


def check_bounds(obj):
    """``obj`` (a configuration dataclass), once each field declared ``bounded`` (scarlab.config) is checked to lie
    within its bounds; a list's values one by one. Returns ``obj``."""
    for f in dataclasses.fields(obj):
        if "bounds" not in f.metadata:
            continue
        low, high, above = f.metadata["bounds"]
        value = getattr(obj, f.name)
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is None or ((low is None or v >= low) and (high is None or v <= high)
                             and (above is None or v > above)):
                continue
            span = (f"from {low} to {high}" if low is not None and high is not None else
                    f"≥ {low}" if low is not None else f"> {above}" if above is not None else f"≤ {high}")
            raise ScarlabError(f"{f.name} must be {span}, got {v!r}")
    return obj


# ============================================================================================ help and options
def effective_defaults(cls, resolve: Callable[[str], object] | None) -> dict[str, str]:
    """{field: text of its effective default}, per data set where ``resolve(dataset)`` makes them differ."""
    base = {f.name: _default(f) for f in dataclasses.fields(cls)}
    if resolve is None:
        return {k: _show(v) for k, v in base.items()}
    per = {ds: resolve(ds) for ds in DATASETS}
    out = {}
    for name in base:
        if name == "dataset":  # the data set the defaults are shown for, not a default that varies with it
            out[name] = _show(base[name])
            continue
        groups: dict[str, list[str]] = {}
        for ds, obj in per.items():
            groups.setdefault(_show(getattr(obj, name, base[name])), []).append(ds)
        out[name] = next(iter(groups)) if len(groups) == 1 else "; ".join(
            f"{v} on {', '.join(dss)}" for v, dss in groups.items())
    return out


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _show(v) -> str:
    from .results import format_value

    if v is None or v == [] or v == {} or v == "":
        return "none"
    return format_value(v)


METAVARS = {str: "TEXT", int: "N", float: "X"}


class _Bool(argparse.Action):
    """``--name`` (true), ``--name false`` and ``--no-name``."""

    def __init__(self, option_strings, dest, **kw):
        name = option_strings[0][2:]
        super().__init__(option_strings + [f"--no-{name}"], dest, nargs="?", metavar="BOOL", **kw)

    def __call__(self, parser, namespace, value, option_string=None):
        if option_string.startswith("--no-"):
            if value is not None:
                parser.error(f"{option_string} takes no value")
            setattr(namespace, self.dest, False)
        else:
            setattr(namespace, self.dest, True if value is None else value)


def add_options(parser, cls, *, prefix: str = "", skip: Iterable[str] = (), defaults: dict[str, str] | None = None,
                aliases: dict[str, list[str]] | None = None, title: str | None = None) -> None:
    """One option per field of ``cls`` (``skip`` left out), help = docstring + effective default.

    Options are stored under ``prefix + field`` and only when given (``argparse.SUPPRESS``), so that
    :func:`given` can lay them over a config file's values."""
    docs, types = field_docs(cls), hints(cls)
    shown = defaults if defaults is not None else effective_defaults(cls, None)
    target = parser.add_argument_group(title) if title else parser
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        base, is_list = kind(types[f.name])
        if base is dict:
            continue
        text = f"{docs.get(f.name, '')} [default: {shown.get(f.name, 'none')}]".replace("%", "%%").strip()
        names = [option(f.name)] + list((aliases or {}).get(f.name, []))
        kw: dict = dict(dest=prefix + f.name, default=argparse.SUPPRESS, help=text)
        if base is bool and not is_list:
            target.add_argument(*names, action=_Bool, **kw)
        elif is_list:
            target.add_argument(*names, nargs="*", metavar=METAVARS.get(base, "VALUE"), **kw)
        else:
            target.add_argument(*names, metavar=METAVARS.get(base, "VALUE"), **kw)


def given(args: argparse.Namespace, cls, prefix: str = "") -> dict:
    """The options of ``cls`` given on the command line (raw; :func:`build` types them)."""
    out = {}
    for f in dataclasses.fields(cls):
        if hasattr(args, prefix + f.name):
            out[f.name] = getattr(args, prefix + f.name)
    return out


def add_config(parser) -> None:
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="YAML or JSON file of these options (keys as the option names, - or _); options given "
                             "on the command line override it")
