"""`scarlab export`: executed notebooks as HTML pages that draw their figures offline (scarlab.notebook.export_html)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ExportConfig:
    """Write executed notebooks (a run's notebook.ipynb, evaluate.ipynb, audit.ipynb; a pipeline's compare.ipynb)
    as HTML pages that draw their figures offline: plotly.js inlined once per page from the installed plotly
    package, nothing loaded from a CDN. Each page is written next to its notebook, NAME.html."""

    notebooks: list[str] = field(default_factory=list)
    """executed notebooks, or run directories (every .ipynb in them)."""


def register(sub) -> None:
    from . import _common

    p = _common.add_parser(sub, "export", ExportConfig, "executed notebooks as HTML that shows the figures offline",
                           positional=("notebooks",))
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import ScarlabError
    from ..notebook import export_html
    from . import _common

    cfg, _ = _common.options(args)
    if not cfg.notebooks:
        raise ScarlabError("give executed notebooks or run directories: scarlab export NOTEBOOK [NOTEBOOK ...]")
    paths = []
    for given in map(Path, cfg.notebooks):
        found = sorted(given.glob("*.ipynb")) if given.is_dir() else [given] if given.is_file() else []
        if not found:
            raise ScarlabError(f"no executed notebook in {given}" if given.is_dir() else f"no such notebook: {given}")
        paths += found
    for p in paths:
        print(f"exported {p} -> {export_html(p)}")
    return 0
