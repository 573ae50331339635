"""The scarlab dashboard (Streamlit multipage app).

``app.py`` is the entry point (navigation only, ``st.navigation``); ``views/`` hold the pages; ``data.py`` reads run
directories (cached, confined to the runs root, no pickles) and takes what a run *is* — method, variant, label,
forget set, status — and the metrics table from ``scarlab.results``, as every summary does; ``plots.py`` builds
plotly figures (pure functions); ``common.py`` holds the widgets several pages share.

The folder is not an installed package: ``app.py`` registers it under the module name
``scarlab_dashboard`` so pages import ``scarlab_dashboard.data`` wherever the folder lives (a checkout, or a
copy shipped next to the installed package; see ``scarlab.commands.dashboard.app_path``).

Why ``views/`` and not ``pages/``: Streamlit treats a ``pages/`` folder next to the main script as a v1
multipage app, and a browser that opens ``/migration`` directly on a fresh server then runs that page
*without* ``app.py`` (no navigation, no package registration). ``views/`` keeps ``st.navigation`` in charge.
"""
