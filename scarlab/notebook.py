"""What every scarlab notebook sets up first (its setup cell calls :func:`setup_notebook`).

Figures: each output carries two views, plotly's JSON (JupyterLab's renderer) and text/html (what
``jupyter nbconvert --to html`` and viewers without plotly's extension show). The "notebook" renderer embeds
plotly.js once per notebook, at the first figure (about 4.8 MB), so an exported notebook works offline;
``SCARLAB_PLOTLY_RENDERER`` overrides the choice, e.g. ``plotly_mimetype+notebook_connected`` (plotly.js from a CDN:
KBs, needs the internet to view).
"""
from __future__ import annotations

import os
import warnings

RENDERER = "plotly_mimetype+notebook"
FIG = dict(width=640, height=340, margin=dict(l=40, r=20, t=50, b=40))
"""layout of the notebooks' figures: small figures keep notebooks light."""


def setup_notebook() -> None:
    """Figures for Lab and for exported HTML (module docstring), quiet tqdm in kernels without ipywidgets, and the
    torch thread count the pipeline asks for (``SCARLAB_THREADS``), so parallel stages do not oversubscribe."""
    import plotly.io as pio
    import torch

    pio.renderers.default = os.environ.get("SCARLAB_PLOTLY_RENDERER") or RENDERER
    warnings.filterwarnings("ignore", message="IProgress not found")
    torch.set_num_threads(int(os.environ.get("SCARLAB_THREADS") or torch.get_num_threads()))
