"""scarlab dashboard — navigation only. Start with `scarlab dashboard --runs DIR` (binds 127.0.0.1 unless --address
or $STREAMLIT_SERVER_ADDRESS says otherwise), or `streamlit run dashboard/app.py -- --runs DIR`; the runs root may
also come from $SCARLAB_RUNS.

:data:`PAGES` is the one list of pages: the app's navigation, the tests and the benchmark read it from here (importing
this module only reads it; Streamlit runs the file as ``__main__``)."""
from pathlib import Path

import streamlit as st

VIEWS = Path(__file__).resolve().parent / "views"
PAGES = (  # views/<name>.py, served at /<name>; title; icon. The first is the default page.
    ("runs", "Runs", ":material/table_rows:"),
    ("migration", "Feature migration", ":material/scatter_plot:"),
    ("distances", "Distances", ":material/straighten:"),
    ("curves", "Curves", ":material/show_chart:"),
    ("compare", "Compare", ":material/balance:"),
    ("privacy", "Privacy", ":material/shield:"),
    ("run", "Run", ":material/play_circle:"),  # left out of the navigation when data.run_page_refusal() says why
)

if __name__ == "__main__":
    from scarlab_dashboard.data import run_page_refusal

    st.set_page_config(page_title="scarlab · unlearning dashboard", page_icon="🪄", layout="wide")
    shown = [p for p in PAGES if p[0] != "run" or run_page_refusal() is None]
    st.navigation([st.Page(VIEWS / f"{name}.py", title=title, icon=icon, url_path=name, default=i == 0)
                   for i, (name, title, icon) in enumerate(shown)]).run()
