"""Widgets and page scaffolding shared by the pages (Streamlit calls live here and in views/, not in plots.py):
the run picker, tables and charts with their downloads (CSV for a table, HTML for a figure), thumbnails.

Run-supplied text (run ids, methods, errors, class names: anything read from a run folder) is data, never markup.
Pages show it with ``st.text`` / ``st.code`` where they can; where Streamlit renders Markdown (warnings, captions,
image captions) it goes through :func:`md`, which escapes every Markdown character, so an image or link in a
received manifest is shown as its characters and never makes the browser fetch anything.
"""
from __future__ import annotations

import base64
import re
import string
from typing import Callable

import pandas as pd
import streamlit as st

from scarlab import results as R
from scarlab_dashboard import data as D
from scarlab_dashboard import plots as P

METHOD_ORDER = ("scar", "scar_self", "original", "retrained")  # first in the run pickers
_MD_SPECIAL = re.compile("([" + re.escape(string.punctuation) + "])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_AUTOLINK = re.compile(r"(?<=[A-Za-z])(?=:)|(?<=[Ww]{3})(?=\.)|(?=@)")  # scheme:, www., user@host
WORD_JOINER = "\u2060"  # invisible, and no letter, dot or @: GFM's literal autolinks (http://, www., emails) cannot form


def md(text, limit: int = 600) -> str:
    """``text`` as Markdown that renders as exactly its characters (on one line, at most ``limit`` of them).

    Every ASCII punctuation character is backslash-escaped (CommonMark lets any of them be), so no image, link,
    autolink, HTML, emphasis, heading, table, code span, LaTeX (``$``) or Streamlit directive (``:red[...]``)
    can form; newlines and control characters become spaces. Escapes do not stop GitHub-flavoured Markdown from
    linking a bare ``http://…``, ``www.…`` or e-mail address, so an invisible word joiner goes before every ``:``
    that follows a letter, every ``.`` after ``www`` and every ``@``: the text reads the same and is no link."""
    s = _CONTROL.sub(" ", str(text))
    s = " ".join(s.split())
    if len(s) > limit:
        s = s[:limit - 1] + "…"
    return _MD_SPECIAL.sub(r"\\\1", _AUTOLINK.sub(WORD_JOINER, s))


def header(title: str, intro: str | None = None) -> None:
    st.title(title)
    if intro:
        st.caption(intro)


SHOW_SHADOWS = "_show_shadows"  # session key set by the Runs page's "show shadow models" toggle


def show_shadows() -> bool:
    return bool(st.session_state.get(SHOW_SHADOWS, False))


def load_runs(unusable: bool = False) -> list[D.Run]:
    """Every run under the root — less the U-LiRA shadow members (``scarlab audit`` makes them) unless the Runs
    page's "show shadow models" toggle is on, and less the runs whose manifest, config or metrics cannot be read or
    hold a field of the wrong type (``Run.usable``) unless ``unusable`` (the Runs page lists them with their
    problem); stops the page with an error when there is no usable root."""
    root = D.runs_root()
    with st.sidebar:
        st.caption("Runs root: " + (md(root) if root else "not set"))
    got = D.scan(root)
    if got.error:
        st.error(md(got.error))
        st.stop()
    runs = [r for r in got.value or [] if (show_shadows() or not r.shadow) and (unusable or r.usable)]
    if not runs:
        hidden = len(got.value or [])
        st.warning(f"No runs under {md(root)} yet"
                   + (f" (only {hidden} hidden ones: shadow models or unusable runs, see the Runs page)" if hidden else "")
                   + ". Create some with `scarlab demo` or `scarlab pipeline`, then reload this page.")
        st.stop()
    return runs


def warn(*messages: str | None) -> None:
    """Show each non-empty message (plain text, never Markdown) as a warning; many messages are grouped in an
    expander as plain text."""
    msgs = [str(m) for m in messages if m]
    if len(msgs) <= 3:
        for m in msgs:
            st.warning(md(m), icon="⚠️")
    else:
        st.warning(f"{len(msgs)} problems reading run files (details below)", icon="⚠️")
        with st.expander("details"):
            for m in msgs:
                st.text("- " + m)


def _label_key(run: D.Run) -> tuple:
    m = run.method
    return (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m, run.label)


def pick_run(runs: list[D.Run], page: str, keep: Callable[[D.Run], bool], what: str) -> D.Run | None:
    """Result (``method · variant``, the run's label) and run selectboxes; the choice carries across pages
    (session key ``_run``). Switching the result keeps the comparable run (same original model, forget set and
    seed) when one exists.
    """
    cands = [r for r in runs if keep(r)]
    if not cands:
        st.info(f"No run has {what} yet.")
        return None
    lookup = D.by_id(runs)
    prev = lookup.get(st.session_state.get("_run"))
    labels = list(dict.fromkeys(r.label for r in sorted(cands, key=_label_key)))
    l_default = prev.label if prev is not None and prev.label in labels else labels[0]
    c1, c2 = st.columns([1, 3])
    label = c1.selectbox("Method · variant", labels, index=labels.index(l_default), key=f"{page}_label")
    subset = sorted((r for r in cands if r.label == label),
                    key=lambda r: (r.status != "complete", r.dataset or "", r.forget, r.seed or 0, r.id))
    idx = 0
    if prev is not None:
        for i, r in enumerate(subset):
            if r.id == prev.id:
                idx = i
                break
        else:
            for i, r in enumerate(subset):
                if r.group_key == prev.group_key and r.seed == prev.seed:
                    idx = i
                    break
    titles = {r.id: r.title for r in subset}
    run_id = c2.selectbox("Run", list(titles), index=idx, format_func=lambda i: titles.get(i, i),
                          key=f"{page}_run_{label}")
    st.session_state["_run"] = run_id
    run = lookup[run_id]
    if run.status not in ("complete", "not evaluated"):
        st.warning(f"This run's status is **{md(run.status)}**" + (f": {md(run.error, 300)}" if run.error else "") +
                   " — what it wrote so far is shown.", icon="⚠️")
    return run


def pick_snapshot_run(page: str) -> tuple[list[D.Run], D.Run]:
    """(every run, the picked unlearning run with feature snapshots); stops the page when there is none."""
    runs = load_runs()
    run = pick_run(runs, page, lambda r: r.stage == "unlearn" and (r.has_embedding or r.n_snapshots > 0),
                   "feature snapshots (an unlearning run)")
    if run is None:
        st.stop()
    return runs, run


def legend_names(runs: list[D.Run]) -> dict[str, str]:
    """Run id -> the shortest unique name among ``runs``: the label, then with forget set, seed and id added as
    needed (``scar · lr=2.5e-4``, ``scar · class 3 · s1``)."""
    parts = {r.id: (r.label, r.forget, "" if r.seed is None else f"s{r.seed}", r.id) for r in runs}
    for depth in range(1, 5):
        names = {i: " · ".join(p for p in ps[:depth] if p) for i, ps in parts.items()}
        if len(set(names.values())) == len(names):
            break
    return names


@st.cache_resource(show_spinner=False, max_entries=256)
def _figure(name: str, key: tuple, _build: Callable):
    built = _build()
    if isinstance(built, tuple):
        return tuple(P.without_links(b) if isinstance(b, P.go.Figure) else b for b in built)
    return P.without_links(built) if isinstance(built, P.go.Figure) else built


def figure(name: str, key: tuple, build: Callable):
    """``build()`` cached as a shared object under (name, key): a rerun with the same inputs reuses the figure.
    ``key`` must capture every input (use ``D.run_sig`` for run files); the figure must not be mutated. Every
    figure a page shows is made here: run text in it never becomes a link (``plots.without_links``)."""
    return _figure(name, key, build)


# ----------------------------------------------------------------------------- tables and figures, with downloads
def file_name(*parts) -> str:
    """A safe download file name from run ids, labels and page names."""
    name = re.sub(r"[^A-Za-z0-9._=-]+", "_", "_".join(str(p) for p in parts if p)).strip("._")
    return name[:120] or "scarlab"


def _download(label: str, make: Callable[[], bytes], name: str, mime: str, key: str) -> None:
    # a callable: the file is made only when the button is clicked, never on a rerun
    st.download_button(label, data=make, file_name=name, mime=mime, key=key, on_click="ignore", type="tertiary",
                       icon=":material/download:")


def table(df, name: str, key: str, **dataframe) -> None:
    """``st.dataframe(df)`` and a CSV download of the same table (``name``: the file name, without .csv)."""
    st.dataframe(df, **dataframe)
    index = not isinstance(df.index, pd.RangeIndex) and dataframe.get("hide_index") is not True
    _download("CSV", lambda: df.to_csv(index=index).encode("utf-8"), f"{file_name(name)}.csv", "text/csv",
              f"{key}_csv")


def chart(fig, name: str, key: str, download: str = "HTML", **plotly_chart):
    """``st.plotly_chart(fig)`` and a self-contained HTML download of it (plotly.js inlined: opens offline, in
    slides too; animations wait for their play button). Returns the chart's selection event."""
    event = st.plotly_chart(fig, theme=None, key=key, **plotly_chart)
    _download(download, lambda: P.figure_html(fig).encode("utf-8"), f"{file_name(name)}.html", "text/html",
              f"{key}_html")
    return event


def metric_column(key: str):
    """A column config for a metric of ``scarlab.results.METRICS``: its label, its unit and digits."""
    m = R.METRIC.get(key)
    if m is None:
        return st.column_config.NumberColumn(key, format="%.3f")
    return st.column_config.NumberColumn(m.label, help=key,
                                         format="percent" if m.scale == 100 else f"%.{m.digits}f")


def parent(runs: list[D.Run], run: D.Run, role: str) -> D.Run | None:
    pid = run.parents.get(role)
    return D.by_id(runs).get(pid) if pid else None


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def thumb_bytes(b64: str | None) -> bytes | None:
    """A stored thumbnail's PNG bytes; None unless it decodes to a PNG (no SVG or other formats from a run)."""
    if not b64 or not isinstance(b64, str):
        return None
    try:
        img = base64.b64decode(b64, validate=True)
    except ValueError:
        return None
    return img if img.startswith(PNG_SIGNATURE) else None


def gallery(items: list[tuple[str | None, str]], width: int = 72, per_row: int = 8) -> None:
    """Thumbnails (base64 PNG, caption) in rows; missing images show their caption only."""
    if not items:
        return
    for start in range(0, len(items), per_row):
        cols = st.columns(per_row)
        for col, (b64, caption) in zip(cols, items[start:start + per_row]):
            img = thumb_bytes(b64)
            with col:
                if img is not None:
                    st.image(img, caption=md(caption), width=width)
                else:
                    st.caption(md(caption))


def class_name(names: list[str], i) -> str:
    try:
        i = int(i)
    except (TypeError, ValueError):
        return "?"
    if i < 0:
        return "—"
    return names[i] if i < len(names) else str(i)
