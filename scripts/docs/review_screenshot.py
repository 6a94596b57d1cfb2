"""The README's screenshot of the review page (docs/review-page.png), taken with headless chromium.

Starts a local stack (as `make up` does, in a temporary folder), conceals a few held-out photos of
``../shared/data`` (generated scenes without it), flags one, logs in as the stack's reviewer, opens the
flagged job, selects its first plate and starts drawing a quad, and saves a small PNG. Stops everything.

    .venv/bin/python scripts/docs/review_screenshot.py [--out docs/review-page.png] [--width 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from model_training.data import DEFAULT_DATA_ROOT  # noqa: E402
from plateveil_ops.samples import render_scene  # noqa: E402
from plateveil_ops.stack import REVIEWER, Stack  # noqa: E402
from producer.client import PlateveilClient  # noqa: E402
from tests.integration.test_review_browser import click_image_point, start_browser  # noqa: E402

DATA = DEFAULT_DATA_ROOT / "kaggle-cars" / "images"


def photos(folder: Path, count: int) -> list[bytes]:
    if folder.is_dir():
        return [p.read_bytes() for p in sorted(folder.glob("*.jp*g"))[:count]]
    return [render_scene(seed=s, size=(800, 600)).jpeg() for s in range(count)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/review-page.png"))
    ap.add_argument("--width", type=int, default=1000, help="width of the saved PNG")
    ap.add_argument("--count", type=int, default=4)
    ap.add_argument("--photos", type=Path, default=DATA, help="folder of car photos (generated scenes without it)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Stack(state_dir=Path(tmp)) as stack, \
            PlateveilClient(stack.api_url, stack.api_key) as client:
        jobs = [client.wait(client.submit_photo(data)["job_id"], timeout=120) for data in photos(args.photos, args.count)]
        target = max(jobs, key=lambda j: j["plate_count"])
        client.flag(target["job_id"], "seller: the plate is still readable")
        driver = start_browser_outside_pytest()
        try:
            driver.set_window_size(1400, 900)
            driver.get(f"{stack.api_url}/review/login")
            driver.find_element("id", "name").send_keys(REVIEWER)
            driver.find_element("id", "key").send_keys(stack.review_key)
            driver.find_element("id", "login").click()
            time.sleep(0.5)
            driver.get(f"{stack.api_url}/review/jobs/{target['job_id']}")
            time.sleep(1.0)
            svg = driver.find_element("id", "svg-original")
            w, h = driver.execute_script("const d = JSON.parse(document.getElementById('job-data').textContent);"
                                         "return [d.width, d.height];")
            if target["plates"]:
                x1, y1, x2, y2 = target["plates"][0]["box"]
                click_image_point(driver, svg, (x1 + x2) / 2, (y1 + y2) / 2, w, h)   # select the plate
            driver.find_element("tag name", "body").send_keys("a")
            for x, y in ((0.08, 0.62), (0.2, 0.6), (0.21, 0.68)):                      # a quad being drawn
                click_image_point(driver, svg, x * w, y * h, w, h)
            shot = Path(tmp) / "shot.png"
            driver.save_screenshot(str(shot))
        finally:
            driver.quit()
        image = Image.open(shot).convert("RGB")
        image = image.resize((args.width, round(image.height * args.width / image.width)), Image.Resampling.LANCZOS)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")
    return 0


def start_browser_outside_pytest() -> Any:
    """``start_browser`` raises pytest's Skipped without a browser: say so plainly here."""
    try:
        return start_browser()
    except BaseException as exc:  # pytest.skip raises a BaseException subclass
        raise SystemExit(f"no browser: {exc}") from None


if __name__ == "__main__":
    sys.exit(main())
