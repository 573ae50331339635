"""The dashboard in a real browser: `streamlit run` on 127.0.0.1, headless Chromium (Debian's `chromium` and
`chromium-driver`) driven by selenium, the feature-migration chart must draw its points; a screenshot is
saved (pytest's tmp dir and, when $SCARLAB_ARTIFACTS is set, copied there).

Off CI a missing browser skips with the reason; under CI (env CI set) it fails.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import copy_run

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
CHROME_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1500,1150"]


URL_TEXT = "http://example.invalid/a, www.example.invalid and me@example.invalid"
LINK_TAG = '<a href="http://example.invalid/p">m</a>'  # plotly renders this tag in a name as a link


def _browser() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [n for n, p in (("chromium", chromium), ("chromedriver (Debian: chromium-driver)", driver)) if not p]
    try:
        import selenium  # noqa: F401  (presence check)
    except ImportError:
        missing.append("the selenium package (pip install selenium)")
    if missing:
        msg = f"{' and '.join(missing)} not found: apt-get install -y chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(msg + " — required under CI")
        pytest.skip(msg)
    return chromium, driver


def _chrome(offline: bool = False):
    """Headless Chromium driven by selenium (skips or fails as :func:`_browser` says when there is none); its
    performance log records every network request of the page (:func:`_requests`); ``offline``: no host resolves."""
    chromium, driver_path = _browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = chromium
    for flag in CHROME_FLAGS + (["--host-resolver-rules=MAP * ~NOTFOUND"] if offline else []):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service(driver_path), options=opts)


def _requests(driver) -> list[str]:
    """The URLs the page requested (documents, scripts, images, fonts, fetches, web sockets) since the last call."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
        elif msg["method"] == "Network.webSocketCreated":
            urls.append(msg["params"]["url"])
    return urls


def _requests_until_quiet(driver, quiet: float = 1.5, most: float = 6.0) -> list[str]:
    """:func:`_requests` collected until the page asked for nothing new for ``quiet`` seconds (at most ``most``)."""
    urls, start = [], time.monotonic()
    last = start
    while time.monotonic() - last < quiet and time.monotonic() - start < most:
        new = _requests(driver)
        if new:
            urls += new
            last = time.monotonic()
        time.sleep(0.2)
    return urls


def _rerun_done(driver, most: float = 15.0) -> None:
    """Wait for the app's rerun after an input: Streamlit shows its status widget while the script runs; done once
    it has been gone for half a second (at most ``most`` seconds)."""
    from selenium.webdriver.common.by import By

    time.sleep(0.3)  # the rerun request reaches the server
    start = time.monotonic()
    idle_since = None
    while time.monotonic() - start < most:
        if driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]'):
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= 0.5:
            return
        time.sleep(0.1)


def _keep(shot: Path) -> None:
    """Copy a screenshot to $SCARLAB_ARTIFACTS when it is set."""
    if shot.exists() and os.environ.get("SCARLAB_ARTIFACTS"):
        dest = Path(os.environ["SCARLAB_ARTIFACTS"])
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(shot, dest / shot.name)


@pytest.fixture(scope="module")
def browser_runs(tmp_path_factory, digits_embedded) -> Path:
    """Copies of the session's real digits runs (original, retrained, SCAR), embedded."""
    from scarlab.embed import run_embed

    root = tmp_path_factory.mktemp("browser_runs")
    orig = copy_run(digits_embedded["original"], root / "digits_original")
    retr = copy_run(digits_embedded["retrained"], root / "digits_retrained_cr0")
    scar = copy_run(digits_embedded["scar"], root / "digits_scar_cr0", {"original": orig, "retrained": retr})
    m = json.loads((scar / "manifest.json").read_text())
    run_embed(scar, progress=False)  # transforms only: the reducers came with the copies
    from test_dashboard import write_audit, write_offline_audit  # synthetic audit files for the Privacy page

    write_audit(scar, k=16, n=300)
    write_offline_audit(scar)
    received = shutil.copytree(scar, root / "received")  # run text with web addresses: shown, never a link
    m.update(status="failed", error=f"see {URL_TEXT}")
    (received / "manifest.json").write_text(json.dumps(m))
    cfg = json.loads((received / "config.json").read_text())
    cfg["method"] = LINK_TAG  # in the Curves legend, next to SCAR (same original and forget set)
    (received / "config.json").write_text(json.dumps(cfg))
    return root


def _serving(root: Path, tmp_path: Path):
    """`streamlit run` over ``root`` on a free loopback port, as `scarlab dashboard` starts it; yields its URL."""
    from scarlab.commands.dashboard import free_port, streamlit_command

    port = free_port()
    cmd = streamlit_command(root, port, "127.0.0.1")  # the line `scarlab dashboard` runs
    log = open(tmp_path / "streamlit.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited ({proc.returncode}): {(tmp_path / 'streamlit.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200 and r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the dashboard did not become healthy within 120 s")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def server(browser_runs, tmp_path_factory):
    """One dashboard over :func:`browser_runs` for the tests that only read pages (each in a browser of its own)."""
    yield from _serving(browser_runs, tmp_path_factory.mktemp("server"))


def test_feature_migration_renders_points(server, tmp_path):
    driver = _chrome()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    shot = tmp_path / "feature_migration.png"
    try:
        driver.get(server + "/migration")
        # a cold app can show a blank page first: wait for plotly's SVG and its scatter points
        points_css = '[data-testid="stPlotlyChart"] .scatterlayer .trace .points path'
        try:
            WebDriverWait(driver, 150).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, points_css)) > 50)
        finally:
            driver.save_screenshot(str(shot))
        assert driver.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"] .main-svg')
        n = len(driver.find_elements(By.CSS_SELECTOR, points_css))
        assert n > 100, f"only {n} scatter points drawn"
        assert "Feature migration" in driver.page_source
        assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
        # the play button animates without breaking the chart
        play = [b for b in driver.find_elements(By.CSS_SELECTOR, ".updatemenu-button") if "Play" in b.text]
        if play:
            play[0].click()
            time.sleep(2)
            assert len(driver.find_elements(By.CSS_SELECTOR, points_css)) == n
    finally:
        driver.quit()
        _keep(shot)
    assert shot.stat().st_size > 10_000


def test_migration_html_export_plays_offline(browser_runs, tmp_path):
    """The Migration page's "HTML for slides" file, opened from disk with every host unresolvable: plotly.js is
    inlined, the three panels draw their points and every step is there as an animation frame."""
    import pandas as pd

    from scarlab_dashboard import plots as P

    chromium, driver_path = _browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    emb = pd.read_parquet(browser_runs / "digits_scar_cr0" / "embedding.parquet")
    oracle = pd.read_parquet(browser_runs / "digits_retrained_cr0" / "embedding.parquet")
    page = tmp_path / "feature_migration.html"
    page.write_text(P.figure_html(P.migration_figure(emb, None, oracle, method="scar")), encoding="utf-8")

    opts = Options()
    opts.binary_location = chromium
    for flag in CHROME_FLAGS + ["--host-resolver-rules=MAP * ~NOTFOUND"]:  # offline: no host resolves
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        driver.get(page.as_uri())
        points_css = ".scatterlayer .trace .points path"
        WebDriverWait(driver, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, points_css)) > 100)
        frames = driver.execute_script("return document.querySelector('.plotly-graph-div')._transitionData"
                                       "._frames.map(f => f.name)")
        assert frames == [str(s) for s in sorted(emb["step"].unique())]
        play = [b for b in driver.find_elements(By.CSS_SELECTOR, ".updatemenu-button") if "Play" in b.text]
        assert play, "no play button"
    finally:
        driver.quit()


def test_stage_notebook_html_export_draws_offline(tmp_path, warm_kernels):
    """An executed stage notebook (02_split) through `scarlab export`, opened from disk: both figures draw, and
    the page asks no host for anything (plotly.js is inlined from the plotly package, no CDN script)."""
    from urllib.parse import urlparse

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from conftest import run_nb
    from scarlab.cli import main

    driver = _chrome(offline=True)
    executed = tmp_path / "notebook.ipynb"
    shot = tmp_path / "notebook_export.png"
    try:
        run_nb(warm_kernels, "02_split.ipynb", executed, dataset="digits", out_dir=str(tmp_path / "split"))
        assert main(["export", str(executed)]) == 0
        driver.get(executed.with_suffix(".html").as_uri())
        drawn = ".plotly-graph-div .main-svg .cartesianlayer"
        try:
            WebDriverWait(driver, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, drawn)) == 2)
        finally:
            driver.save_screenshot(str(shot))
        urls = _requests(driver)
        assert urls and not [u for u in urls if urlparse(u).netloc], urls  # file: and data: only
    finally:
        driver.quit()
        _keep(shot)


def test_privacy_page_renders(server, tmp_path):
    """The Privacy page of an audited run: ROC, TPR and ε bars, the offline audit's AUC bars and z histogram, the
    per-example map and one example's score distributions all draw in the browser, without an exception."""
    driver = _chrome()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    shot = tmp_path / "privacy.png"
    charts = '[data-testid="stPlotlyChart"] .main-svg'
    try:
        driver.get(server + "/privacy")
        try:
            WebDriverWait(driver, 150).until(
                lambda d: len({e.find_element(By.XPATH, "./ancestor::*[@data-testid='stPlotlyChart']").id
                               for e in d.find_elements(By.CSS_SELECTOR, charts)}) >= 7)
        finally:
            driver.save_screenshot(str(shot))
        assert "U-LiRA" in driver.page_source and "Offline audit: each model against" in driver.page_source
        assert driver.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"] .scatterlayer .trace path')
        assert driver.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"] .barlayer .point')
        assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    finally:
        driver.quit()
        _keep(shot)


def test_every_page_stays_on_the_dashboards_host(server, tmp_path):
    """Every page of the app (read from app.py) loads with no request to a host other than the dashboard's own (the
    page icon and every asset are served locally; data: and blob: URLs stay in the browser), and a run's text that
    holds web addresses is shown without a link to them."""
    from urllib.parse import urlsplit

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from conftest import PAGES

    own = urlsplit(server).netloc
    driver = _chrome()
    seen, outside, links = 0, [], []
    try:
        for path in PAGES:
            driver.get(f"{server}/{path}")
            WebDriverWait(driver, 150).until(lambda d: d.find_elements(By.CSS_SELECTOR, "h1"))
            for url in _requests_until_quiet(driver):  # late requests too: charts, fonts, the page icon
                seen += 1
                parts = urlsplit(url)
                if parts.scheme not in ("data", "blob") and parts.netloc != own:
                    outside.append((path, url[:120]))
            hrefs = driver.execute_script(  # HTML and SVG (plotly) anchors
                "return [...document.querySelectorAll('a')].map(a => a.href && a.href.baseVal !== undefined ? "
                "a.href.baseVal : a.href).filter(h => h)")
            links += [(path, h) for h in hrefs if urlsplit(h).netloc != own]  # mailto: too
            assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]'), path
            if path in ("runs", "curves"):  # the text is shown: the error on Runs, the method in the legend
                assert "example.invalid" in driver.find_element(By.TAG_NAME, "body").text.replace("\u2060", ""), path
    finally:
        driver.quit()
    assert seen > 20, "the performance log recorded no requests"
    assert not outside, outside
    assert not links, links


# ----------------------------------------------------------------------------- the Run page: launch, watch, stop
LIVE_BASE = {"dataset": "digits", "forget_classes": [3], "methods": ["scar"], "epochs": 2}


@pytest.fixture(scope="module")
def live_root(tmp_path_factory):
    """A runs root where a first job already trained the original and the retrained oracle for class 3 (2 epochs)
    and evaluated them: the jobs launched from the page reuse them, as the issue's bench does."""
    from scarlab import jobs as J

    for cand in (REPO / ".venv" / "share" / "jupyter", REPO.parent / "main" / ".venv" / "share" / "jupyter"):
        if cand.is_dir() and "JUPYTER_PATH" not in os.environ:
            os.environ["JUPYTER_PATH"] = str(cand)
            break
    root = tmp_path_factory.mktemp("live_runs")
    base = J.launch({**LIVE_BASE, "methods": ["negative_gradient"], "params": {"negative_gradient": {"epochs": 1}}},
                    runs=root).wait(timeout=400)
    assert base.state == "finished", base.log_tail()
    return root


def _set_text(driver, key: str, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    el = driver.find_element(By.CSS_SELECTOR, f".st-key-{key} input")
    el.send_keys(Keys.CONTROL, "a")
    el.send_keys(Keys.DELETE)
    el.send_keys(text)
    el.send_keys(Keys.ENTER)
    _rerun_done(driver)


def _pick(driver, key: str, text: str, clear: bool = False) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    el = driver.find_element(By.CSS_SELECTOR, f".st-key-{key} input")
    el.click()
    if clear:
        el.send_keys(Keys.BACKSPACE)
    el.send_keys(text)
    el.send_keys(Keys.ENTER)
    el.send_keys(Keys.ESCAPE)
    _rerun_done(driver)


def _stepper(driver) -> str:
    return driver.execute_script(
        "return [...document.querySelectorAll('[data-testid=\"stText\"]')].map(e => e.innerText)"
        ".filter(t => t.includes('train original')).join('\\n')") or ""


def _frames(driver) -> int:
    """Animation frames of the Run page's live migration plot (0 while it is not drawn)."""
    return driver.execute_script(
        "const d = [...document.querySelectorAll('.js-plotly-plot')].filter(d => "
        "JSON.stringify((d.layout || {}).annotations || []).includes('newest'));"
        "return d.length && d[0]._transitionData ? d[0]._transitionData._frames.length : 0") or 0


def test_run_page_launches_watches_queues_and_stops(live_root, tmp_path):
    """The issue's "done when": the form filled for digits class 3, SCAR with two learning rates; launched; the
    stepper advances during unlearning; a second launch queues behind the first; both variants on the Compare page at
    the end; a third job's migration plot gains frames while it unlearns, and stopped mid-stage it reads
    "interrupted"."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from scarlab import jobs as J

    driver = _chrome()
    shot = tmp_path / "run_page.png"
    gen = _serving(live_root, tmp_path)
    url = next(gen)
    try:
        driver.get(url + "/run")
        WebDriverWait(driver, 150).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".st-key-run_launch button"))
        _pick(driver, "run_classes_digits", "3", clear=True)
        _set_text(driver, "run_epochs", "2")
        _set_text(driver, "run_p_scar_lr_digits", "0.0005, 0.00025")
        # every epoch, not stopped early once the forget set is forgotten: each unlearning stage runs for seconds, so
        # the stepper (redrawn every 2 s) shows the job going through its stages
        _set_text(driver, "run_p_scar_epochs_digits", "3")
        _set_text(driver, "run_p_scar_stop_digits", "false")
        driver.find_element(By.CSS_SELECTOR, ".st-key-run_launch button").click()
        WebDriverWait(driver, 60).until(lambda d: len(J.list_jobs(live_root)) == 2)
        first = J.list_jobs(live_root)[-1]
        assert first.config()["params"] == {"scar": {"lr": [0.0005, 0.00025], "epochs": 3, "stop": False}}
        assert first.config()["forget_classes"] == [3]
        time.sleep(2)
        driver.find_element(By.CSS_SELECTOR, ".st-key-run_launch button").click()  # the second launch
        WebDriverWait(driver, 60).until(lambda d: len(J.list_jobs(live_root)) == 3)
        second = J.list_jobs(live_root)[-1]
        assert second.refresh().state == "queued" and first.refresh().live
        WebDriverWait(driver, 30).until(lambda d: "queued" in d.find_element(By.TAG_NAME, "body").text)
        _pick(driver, "run_watch", first.id)  # watch the first
        steppers = []
        deadline = time.monotonic() + 400
        while first.refresh().live and time.monotonic() < deadline:
            text = _stepper(driver)
            if text and (not steppers or steppers[-1] != text):
                steppers.append(text)
            time.sleep(0.5)
        assert first.state == "finished", first.log_tail()
        assert len(steppers) >= 3, steppers  # the stepper advanced stage by stage
        assert second.wait(timeout=200).state == "finished" and second.started >= first.ended

        import pandas as pd

        summary = pd.read_csv(live_root / "summary.csv")
        labels = sorted(summary.loc[summary["method"] == "scar", "label"].unique())
        assert len(labels) == 2, labels
        driver.get(url + "/compare")
        WebDriverWait(driver, 150).until(
            lambda d: all(lbl in d.page_source for lbl in labels))  # both variants, no restart

        driver.get(url + "/run")
        WebDriverWait(driver, 150).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".st-key-run_launch button"))
        _pick(driver, "run_classes_digits", "3", clear=True)
        _set_text(driver, "run_epochs", "2")
        _set_text(driver, "run_p_scar_lr_digits", "0.0001")
        _set_text(driver, "run_p_scar_epochs_digits", "200")
        _set_text(driver, "run_p_scar_stop_digits", "false")  # no early stop: still running when it is stopped
        driver.find_element(By.CSS_SELECTOR, ".st-key-run_launch button").click()
        WebDriverWait(driver, 60).until(lambda d: len(J.list_jobs(live_root)) == 4)
        third = J.list_jobs(live_root)[-1]
        WebDriverWait(driver, 120, poll_frequency=0.3).until(
            lambda d: (third.running_stage() or {}).get("kind") == "unlearn")
        # its migration plot gains frames as SCAR runs: this run goes on until it is stopped, so the 2-s redraws see
        # it grow however fast the machine is (the first job's runs once finished between two redraws: frames [31])
        frames = []

        def grown(d) -> bool:
            n = _frames(d)
            if n and (not frames or frames[-1] != n):
                frames.append(n)
            return len(frames) >= 2
        WebDriverWait(driver, 120, poll_frequency=0.5).until(grown)
        assert frames == sorted(frames) and frames[0] < frames[-1], frames
        assert "▶ running     unlearn scar" in _stepper(driver)
        el = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stText"]')
        if el:
            driver.execute_script("arguments[0].scrollIntoView()", el[-1])
        driver.save_screenshot(str(shot))
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, f".st-key-run_stop_{third.id} button"))
        driver.find_element(By.CSS_SELECTOR, f".st-key-run_stop_{third.id} button").click()
        WebDriverWait(driver, 60).until(lambda d: third.refresh().state == "stopped")
        WebDriverWait(driver, 30).until(lambda d: "■ interrupted unlearn scar" in _stepper(d))
        stopped = next(s for s in third.stages() if s["kind"] == "unlearn")
        m = json.loads((Path(stopped["run_dir"]) / "manifest.json").read_text())
        assert m["status"] == "failed" and m["error"].startswith("interrupted")
        assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
    finally:
        if not shot.exists():
            driver.save_screenshot(str(shot))
        driver.quit()
        for j in J.list_jobs(live_root):
            if j.live:
                j.stop(grace=10)
        gen.close()
        _keep(shot)
