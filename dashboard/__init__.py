"""The scarlab dashboard (Streamlit multipage app).

``app.py`` is the entry point (navigation only, ``st.navigation``); ``views/`` hold the pages; ``data.py`` reads run
directories (cached, confined to the runs root, no pickles) and takes what a run *is* — method, variant, label,
forget set, status — and the metrics table from ``scarlab.results``, as every summary does; ``plots.py`` builds
plotly figures (pure functions); ``common.py`` holds the widgets several pages share.

The folder ``dashboard/`` is the package ``scarlab_dashboard``: pyproject.toml maps the name to the folder
(``package-dir``), for an editable install (a checkout, the Docker image) and a wheel alike, and every page, test and
tool imports it by that one name. Not plain ``dashboard``: a wheel would install that generic top-level name into
site-packages, where it would collide with any other project's ``dashboard``; the ``scarlab_`` prefix is the
distribution's own. It imports from ``scarlab`` only ``results`` and what lies below it (docs/architecture.md).

Why ``views/`` and not ``pages/``: Streamlit treats a ``pages/`` folder next to the main script as a v1
multipage app, and a browser that opens ``/migration`` directly on a fresh server then runs that page
*without* ``app.py`` (no navigation). ``views/`` keeps ``st.navigation`` in charge.
"""
