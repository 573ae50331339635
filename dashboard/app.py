"""scarlab dashboard — navigation only. Start with `scarlab dashboard --runs DIR` (binds 127.0.0.1 unless --address
or $STREAMLIT_SERVER_ADDRESS says otherwise), or `streamlit run dashboard/app.py -- --runs DIR`; the runs root may
also come from $SCARLAB_RUNS."""
import importlib.util
import sys
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
if getattr(sys.modules.get("scarlab_dashboard"), "__path__", [None])[0] != str(HERE):
    # register this folder as the package `scarlab_dashboard` (works from a checkout or an installed copy)
    spec = importlib.util.spec_from_file_location("scarlab_dashboard", HERE / "__init__.py",
                                                  submodule_search_locations=[str(HERE)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["scarlab_dashboard"] = module
    for name in [m for m in sys.modules if m.startswith("scarlab_dashboard.")]:
        del sys.modules[name]
    spec.loader.exec_module(module)

st.set_page_config(page_title="scarlab · unlearning dashboard", page_icon="🪄", layout="wide")
pages = [
    st.Page(HERE / "views" / "runs.py", title="Runs", icon=":material/table_rows:", url_path="runs", default=True),
    st.Page(HERE / "views" / "migration.py", title="Feature migration", icon=":material/scatter_plot:", url_path="migration"),
    st.Page(HERE / "views" / "distances.py", title="Distances", icon=":material/straighten:", url_path="distances"),
    st.Page(HERE / "views" / "curves.py", title="Curves", icon=":material/show_chart:", url_path="curves"),
    st.Page(HERE / "views" / "compare.py", title="Compare", icon=":material/balance:", url_path="compare"),
    st.Page(HERE / "views" / "privacy.py", title="Privacy", icon=":material/shield:", url_path="privacy"),
]
st.navigation(pages).run()
