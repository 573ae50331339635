"""The README's screenshot of the Run page (docs/img/run-page.png): a live SCAR job watched in headless Chromium — the
stage stepper, the running stage's progress and the feature-migration plot of the snapshots so far, in one capture.

    python bench/shot_run_page.py --out docs/img/run-page.png     # about 3 min on 2 cores: a setup job, then SCAR

Needs chromium, chromedriver and selenium (as tests/test_browser.py). Streamlit scrolls its main section, not the
document, so a full-page capture would not reach below the fold: the page is opened in a window tall enough for the
stepper and both plots, the stepper scrolled to the top, the capture cropped from the stepper to the bottom of the
migration plot and reduced to 256 colours (the PNG stays well under 300 KB). Elements of a refresh in progress are
shown unfaded (Streamlit dims them; while SCAR runs the page is nearly always refreshing).
"""
from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from scarlab import jobs as J

BASE = {"dataset": "digits", "forget_classes": [3], "epochs": 2}
WIDTH, HEIGHT = 1500, 2300
FRAMES_JS = ("const d = [...document.querySelectorAll('.js-plotly-plot')].filter(d => "
             "JSON.stringify((d.layout || {}).annotations || []).includes('newest'));"
             "return d.length && d[0]._transitionData ? d[0]._transitionData._frames.length : 0")
STEPPER_JS = ("return [...document.querySelectorAll('[data-testid=\"stText\"]')]"
              ".filter(e => e.innerText.includes('train original'))[0] || null")
MIGRATION_JS = ("return [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"]')].filter(e => "
                "(e.querySelector('.js-plotly-plot')?.layout?.annotations || []).some(a => "
                "String(a.text).includes('newest')))[0] || null")


def _serve(root: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """`streamlit run` over ``root`` on a free loopback port, as `scarlab dashboard` starts it."""
    from scarlab.commands.dashboard import free_port, streamlit_command

    port = free_port()
    proc = subprocess.Popen(streamlit_command(root, port, "127.0.0.1"), stdout=log.open("w"),
                            stderr=subprocess.STDOUT, cwd=log.parent)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc, url
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise SystemExit(f"the dashboard did not start: {log.read_text()[-1500:]}")


def _chrome():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                 "--disable-dev-shm-usage", "--force-device-scale-factor=1", f"--window-size={WIDTH},{HEIGHT}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="docs/img/run-page.png")
    ap.add_argument("--frames", type=int, default=5, help="capture once the migration plot has this many frames")
    args = ap.parse_args()
    from PIL import Image
    from selenium.webdriver.support.ui import WebDriverWait

    with tempfile.TemporaryDirectory(prefix="scarlab-shot-") as tmp:
        root = Path(tmp) / "runs"
        root.mkdir()
        setup = J.launch({**BASE, "methods": ["negative_gradient"], "params": {"negative_gradient": {"epochs": 1}}},
                         runs=root).wait(timeout=600)
        assert setup.state == "finished", setup.log_tail()
        proc, url = _serve(root, Path(tmp) / "streamlit.log")
        driver = _chrome()
        # submitted before the page opens: a fresh page watches the running job
        # a slow learning rate keeps SCAR running (its stopping rule waits for forget accuracy 0) long enough for
        # the page, whose first migration frame can come 15 s into the stage on a busy machine
        scar = {**BASE, "methods": ["scar"], "params": {"scar": {"lr": 0.00002, "epochs": 200}}}
        job = J.submit(scar, root, plan=J.check(scar, root))  # with its plan: the stepper lists the pending stages
        try:
            driver.get(url + "/run")
            seen = []

            def ready(d) -> bool:
                now = ((job.refresh().running_stage() or {}).get("kind"), d.execute_script(FRAMES_JS))
                if not seen or seen[-1] != now:
                    seen.append(now)
                    print(f"{time.strftime('%X')} running {now[0]}, {now[1]} frame(s) drawn", flush=True)
                return now[0] == "unlearn" and now[1] >= args.frames

            WebDriverWait(driver, 300, poll_frequency=0.5).until(ready)
            t_ready = time.monotonic()
            stepper = driver.execute_script(STEPPER_JS)
            driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", stepper)
            # while SCAR runs the page is nearly always mid-refresh (drawing the growing migration plot takes about
            # its 2 s period here), and Streamlit fades the elements of a refresh in progress: shown unfaded (what
            # they hold is the last refresh's, already drawn)
            driver.execute_script("const s = document.createElement('style'); s.textContent = "
                                  "'[data-stale=\"true\"] { opacity: 1 !important; }'; document.head.append(s)")
            time.sleep(0.3)
            top = driver.execute_script("return arguments[0].getBoundingClientRect().top",
                                        driver.execute_script(STEPPER_JS))
            bottom = driver.execute_script("return arguments[0].getBoundingClientRect().bottom",
                                           driver.execute_script(MIGRATION_JS))
            png = driver.get_screenshot_as_png()
            print(f"captured {time.monotonic() - t_ready:.1f} s after that", flush=True)
            img = Image.open(io.BytesIO(png)).convert("RGB")
            box = (0, max(0, int(top) - 70), img.width, min(img.height, int(bottom) + 16))
            shot = img.crop(box).quantize(colors=256)
            out = Path(args.out)
            shot.save(out, optimize=True)
            print(f"{out}: {shot.width}x{shot.height}, {out.stat().st_size / 1024:.0f} KB")
        finally:
            driver.quit()
            if job.refresh().live:
                job.stop(grace=10)
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
