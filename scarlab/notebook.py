"""What every scarlab notebook sets up first (its setup cell calls :func:`setup_notebook`), and its HTML export.

Figures: an executed notebook keeps each figure as plotly's JSON, which JupyterLab draws with plotly's own extension
(installed with the ``plotly`` package; Lab prefers it to text/html). No copy of plotly.js is stored, so a stage
notebook weighs KBs, not the 4.8 MB of an inline plotly.js. Beside the JSON each figure has a one-line ``text/html``
note for viewers without plotly's extension (``jupyter nbconvert --to html``, GitHub). :func:`export_html`
(``scarlab export``) writes a page that draws every figure offline: plotly.js inlined once, from the installed
plotly package, and nothing fetched from a CDN. ``SCARLAB_PLOTLY_RENDERER`` overrides the renderer, e.g.
``plotly_mimetype+notebook`` (plotly.js inline in every notebook, about 5 MB each).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

RENDERER = "scarlab"
FIG = dict(width=640, height=340, margin=dict(l=40, r=20, t=50, b=40))
"""layout of the notebooks' figures: small figures keep notebooks light."""
PLOTLY_MIME = "application/vnd.plotly.v1+json"
NO_PLOTLY_NOTE = ("<p><i>A plotly figure: open the notebook in JupyterLab, or export it with "
                  "<code>scarlab export NOTEBOOK</code>.</i></p>")
"""what a viewer without plotly's renderer shows in a figure's place."""

# nbconvert's lab template without the two scripts it loads from cdnjs on every page (require.js, MathJax; MermaidJS
# loads only for a mermaid diagram): the export is read offline, and require.js would capture plotly.js's UMD bundle.
_OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
"""


def setup_notebook() -> None:
    """Figures as plotly's JSON (module docstring), quiet tqdm in kernels without ipywidgets, and the torch thread
    count the pipeline asks for (``SCARLAB_THREADS``), so parallel stages do not oversubscribe."""
    import plotly.io as pio
    import torch
    from plotly.io.base_renderers import PlotlyRenderer

    class LabRenderer(PlotlyRenderer):
        def to_mimebundle(self, fig_dict):
            return {**super().to_mimebundle(fig_dict), "text/html": NO_PLOTLY_NOTE}

    pio.renderers[RENDERER] = LabRenderer()
    pio.renderers.default = os.environ.get("SCARLAB_PLOTLY_RENDERER") or RENDERER
    warnings.filterwarnings("ignore", message="IProgress not found")
    torch.set_num_threads(int(os.environ.get("SCARLAB_THREADS") or torch.get_num_threads()))


def warm_up() -> None:
    """Load what a kernel's first figure loads, once, in a process that forks stage kernels (the pipeline's zygote,
    :mod:`scarlab.pipeline.warm`): plotly's renderers (and the nbformat they import), its default template and the
    validators of each kind of figure the stage notebooks draw, each drawn to JSON as :func:`setup_notebook`'s
    renderer would. Every forked kernel then starts with them: ~0.16 s of CPU less per stage here (py-spy over
    test_identity's 18-stage sweep). Shows nothing and changes no setting (:func:`setup_notebook` chooses the
    renderer, in the kernel)."""
    import pandas as pd
    import plotly.express as px
    import plotly.graph_objects as go
    import plotly.io as pio
    from plotly.io.base_renderers import PlotlyRenderer

    pio.renderers  # noqa: B018 - plotly.io imports its renderers (and nbformat) on first use
    df = pd.DataFrame({"x": [0, 1], "y": [0.0, 1.0], "c": ["a", "b"]})
    figs = [px.bar(df, x="c", y="y", color="c", barmode="group", title="."),
            px.line(df, x="x", y="y", facet_col="c", markers=True), px.scatter(df, x="x", y="y", color="c"),
            px.histogram(df, x="y", color="c"), px.box(df, x="c", y="y"), px.imshow([[0.0, 1.0], [1.0, 0.0]]),
            go.Figure(go.Scatter(x=[0, 1], y=[0, 1]))]
    for fig in figs:
        fig.add_shape(type="line", x0=0, x1=1, y0=0, y1=1, line=dict(color="#555", dash="dash"))
        fig.add_hline(y=0.5, line_dash="dot", annotation_text=".")
        fig.update_xaxes(type="log", title=".").update_yaxes(matches=None, visible=True).update_traces(opacity=1)
        fig.update_layout(**FIG, legend_title_text=".")
        PlotlyRenderer().to_mimebundle(fig.to_dict())


def export_html(notebook: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write an executed notebook as one HTML page that draws its figures offline: each figure's plotly JSON
    becomes a plotly div, plotly.js is inlined once (before the first figure) from the installed plotly package,
    and nbconvert's CDN scripts are left out. ``out`` defaults to the notebook's path with ``.html``."""
    import nbformat
    import plotly.io as pio
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    notebook = Path(notebook)
    out = Path(out) if out else notebook.with_suffix(".html")
    nb = nbformat.read(notebook, as_version=4)
    first = True
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            fig = output.get("data", {}).get(PLOTLY_MIME)
            if fig is None:
                continue
            fig = dict(fig)
            config = fig.pop("config", None)
            output["data"]["text/html"] = pio.to_html(fig, config=config, include_plotlyjs=first, full_html=False,
                                                      auto_play=False, validate=False)
            first = False
    exporter = HTMLExporter(extra_loaders=[DictLoader({"scarlab_offline.html.j2": _OFFLINE_TEMPLATE})],
                            template_file="scarlab_offline.html.j2")
    html, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": notebook.stem}})
    out.write_text(html, encoding="utf-8")
    return out
