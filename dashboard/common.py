"""Widgets and page scaffolding shared by the pages (Streamlit calls live here and in pages/, not in plots.py)."""
from __future__ import annotations

import base64
from typing import Callable

import streamlit as st

from scarlab_dashboard import data as D

METHOD_ORDER = ("scar", "scar_self", "original", "retrained")


def header(title: str, intro: str | None = None) -> None:
    st.title(title)
    if intro:
        st.caption(intro)


def load_runs() -> list[D.Run]:
    """Every run under the root; stops the page with an error when there is no usable root."""
    root = D.runs_root()
    with st.sidebar:
        st.caption(f"Runs root: `{root}`" if root else "Runs root: not set")
    got = D.scan(root)
    if got.error:
        st.error(got.error)
        st.stop()
    if not got.value:
        st.warning(f"No runs under `{root}` yet. Create some with `scarlab demo` or `scarlab pipeline`, "
                   "then reload this page.")
        st.stop()
    return got.value


def warn(*messages: str | None) -> None:
    """Show each non-empty message as a warning (many messages are grouped in an expander)."""
    msgs = [m for m in messages if m]
    if len(msgs) <= 3:
        for m in msgs:
            st.warning(m, icon="⚠️")
    else:
        st.warning(f"{len(msgs)} problems reading run files (details below)", icon="⚠️")
        with st.expander("details"):
            for m in msgs:
                st.write("- " + m)


def _method_key(m: str) -> tuple:
    return (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m)


def pick_run(runs: list[D.Run], page: str, keep: Callable[[D.Run], bool], what: str) -> D.Run | None:
    """Method and run selectboxes; the choice carries across pages (session key ``_run``).

    Switching the method keeps the comparable run (same original model, forget set and seed) when one exists.
    """
    cands = [r for r in runs if keep(r)]
    if not cands:
        st.info(f"No run has {what} yet.")
        return None
    lookup = D.by_id(runs)
    prev = lookup.get(st.session_state.get("_run"))
    methods = sorted({r.method for r in cands}, key=_method_key)
    m_default = prev.method if prev is not None and prev.method in methods else methods[0]
    c1, c2 = st.columns([1, 3])
    method = c1.selectbox("Method", methods, index=methods.index(m_default), key=f"{page}_method")
    subset = sorted((r for r in cands if r.method == method),
                    key=lambda r: (r.status != "complete", r.dataset, r.forget, r.seed or 0, r.id))
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
    labels = {r.id: r.label for r in subset}
    run_id = c2.selectbox("Run", list(labels), index=idx, format_func=lambda i: labels.get(i, i),
                          key=f"{page}_run_{method}")
    st.session_state["_run"] = run_id
    run = lookup[run_id]
    if run.status != "complete":
        st.warning(f"This run's status is **{run.status}**" + (f": {run.error}" if run.error else "") +
                   " — what it wrote so far is shown.", icon="⚠️")
    return run


@st.cache_resource(show_spinner=False, max_entries=256)
def _figure(name: str, key: tuple, _build: Callable):
    return _build()


def figure(name: str, key: tuple, build: Callable):
    """``build()`` cached as a shared object under (name, key): a rerun with the same inputs reuses the figure.
    ``key`` must capture every input (use ``D.run_sig`` for run files); the figure must not be mutated."""
    return _figure(name, key, build)


def parent(runs: list[D.Run], run: D.Run, role: str) -> D.Run | None:
    pid = run.parents.get(role)
    return D.by_id(runs).get(pid) if pid else None


def thumb_bytes(b64: str | None) -> bytes | None:
    if not b64:
        return None
    try:
        return base64.b64decode(b64, validate=True)
    except ValueError:
        return None


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
                    st.image(img, caption=caption, width=width)
                else:
                    st.caption(caption)


def class_name(names: list[str], i) -> str:
    try:
        i = int(i)
    except (TypeError, ValueError):
        return "?"
    if i < 0:
        return "—"
    return names[i] if i < len(names) else str(i)
