"""Regenerate docs/feature_migration.png: a real digits run (original, retrained oracle, SCAR forgetting class 0
with a snapshot every step), embedded, served on 127.0.0.1 and photographed in headless Chromium.

    python docs/make_screenshot.py                       # trains into a temporary folder (~1-2 min + UMAP)
    python docs/make_screenshot.py --runs DIR            # DIR already holds embedded runs (e.g. `scarlab demo`)

Needs Debian's `chromium` and `chromium-driver` and the selenium package.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
         "--hide-scrollbars", "--window-size=1440,1750"]


def make_runs(root: Path) -> None:
    import torch

    from scarlab.config import TrainConfig, UnlearnConfig
    from scarlab.embed import run_embed
    from scarlab.train import run_train
    from scarlab.unlearn.stage import run_unlearn

    torch.set_num_threads(2)
    orig = run_train(TrainConfig(dataset="digits", device="cpu"), root / "digits_original", progress=False).path
    retr = run_train(TrainConfig(dataset="digits", role="retrained", scenario="CR", forget_classes=[0],
                                 device="cpu"), root / "digits_retrained_cr0", progress=False).path
    scar = run_unlearn(UnlearnConfig(original=str(orig), retrained=str(retr), split=str(retr), method="scar",
                                     device="cpu", snapshot_every=1), root / "digits_scar_cr0", progress=False).path
    run_embed(scar)


def screenshot(runs: Path, out: Path, width: int = 1000) -> None:
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from scarlab.commands.dashboard import serve

    opts = Options()
    opts.binary_location = shutil.which("chromium")
    for f in FLAGS:
        opts.add_argument(f)
    raw = out.with_suffix(".raw.png")
    with serve(runs, 0, block=False, quiet=True, timeout=120) as srv:
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
        try:
            driver.get(srv.url + "/migration")
            css = '[data-testid="stPlotlyChart"] .scatterlayer .trace .points path'
            WebDriverWait(driver, 150).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, css)) > 50)
            time.sleep(4)  # thumbnails and fonts
            driver.save_screenshot(str(raw))
        finally:
            driver.quit()
    im = Image.open(raw).convert("RGB")
    im = im.crop((300, 60, min(1390, im.width), min(1600, im.height)))  # main column: title .. thumbnails
    im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
    im.quantize(colors=256, method=Image.FASTOCTREE, dither=Image.NONE).save(out, optimize=True)
    raw.unlink()
    print(f"{out}: {im.size[0]}x{im.size[1]}, {out.stat().st_size / 1024:.0f} KB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default=None, help="runs root with an embedded SCAR run (default: train one)")
    ap.add_argument("--out", default=str(HERE / "feature_migration.png"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(args.runs) if args.runs else Path(tmp)
        if not args.runs:
            make_runs(runs)
        screenshot(runs, Path(args.out))


if __name__ == "__main__":
    main()
