"""End to end in a real headless browser (Debian's chromium through its chromedriver, driven by
Selenium; nothing is downloaded): log in, open a job, draw a missing plate with four clicks, save,
and check that the concealed object, its sidecar and the event stream changed."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest

from plateveil_ops.samples import render_scene
from plateveil_ops.stack import OUTPUT_BUCKET, REVIEWER

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
# the patch the model is not asked to find: a high-contrast pattern in the sky, x 40-120, y 20-60
PATCH = (40, 20, 120, 60)


def start_browser() -> Any:
    """Headless chromium through chromedriver, or a skip saying what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (requirements-dev.lock)")
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("no chromium / chromedriver on PATH: `apt-get install chromium chromium-driver` "
                    "(make test does it when it runs as root with apt)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


@pytest.fixture
def browser() -> Iterator[Any]:
    driver = start_browser()
    try:
        yield driver
    finally:
        driver.quit()


def photo_with_patch() -> bytes:
    img = render_scene(seed=3, size=(480, 360)).image_bgr.copy()
    x1, y1, x2, y2 = PATCH
    for i, x in enumerate(range(x1, x2, 8)):
        img[y1:y2, x:x + 4] = (0, 0, 0) if i % 2 else (255, 255, 255)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def click_image_point(driver: Any, element: Any, x: float, y: float, width: int, height: int) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    rect = driver.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height];",
                                 element)
    dx, dy = x * rect[0] / width - rect[0] / 2, y * rect[1] / height - rect[1] / 2
    ActionChains(driver).move_to_element_with_offset(element, int(round(dx)), int(round(dy))).click().perform()


def test_reviewer_draws_a_missing_plate_and_saves(stack, client, s3, redis_client, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    job = client.wait(client.submit_photo(photo_with_patch())["job_id"], timeout=60)
    assert job["status"] == "done", job
    before = s3.get_object(Bucket=OUTPUT_BUCKET, Key=job["output_key"])["Body"].read()
    wait = WebDriverWait(browser, 20)

    # not logged in: the job page sends the browser to the login form, which sends it back
    browser.get(f"{stack.api_url}/review/jobs/{job['job_id']}")
    wait.until(ec.presence_of_element_located((By.ID, "key")))
    assert "/review/login" in browser.current_url
    browser.find_element(By.ID, "name").send_keys(REVIEWER)
    browser.find_element(By.ID, "key").send_keys(stack.review_key)
    browser.find_element(By.ID, "login").click()
    wait.until(ec.presence_of_element_located((By.ID, "svg-original")))
    assert browser.current_url.endswith(f"/review/jobs/{job['job_id']}")
    wait.until(lambda d: d.execute_script("const i = document.getElementById('img-original');"
                                          "return i.complete && i.naturalWidth > 0;"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#svg-original polygon.plate")) == job["plate_count"]

    # a: the quad tool, then the patch's 4 corners (clockwise from top left), then s: save
    svg = browser.find_element(By.ID, "svg-original")
    browser.find_element(By.TAG_NAME, "body").send_keys("a")
    x1, y1, x2, y2 = PATCH
    for x, y in ((x1, y1), (x2, y1), (x2, y2), (x1, y2)):
        click_image_point(browser, svg, x, y, 480, 360)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#svg-original polygon.added")) == 1
    browser.find_element(By.TAG_NAME, "body").send_keys("s")
    wait.until(lambda d: d.find_element(By.ID, "status").text.startswith(("saved", "not saved")))
    assert browser.find_element(By.ID, "status").text.startswith("saved: revision 1"), \
        browser.find_element(By.ID, "status").text

    after = s3.get_object(Bucket=OUTPUT_BUCKET, Key=job["output_key"])["Body"].read()
    assert after != before
    old = cv2.imdecode(np.frombuffer(before, np.uint8), cv2.IMREAD_COLOR).astype(np.int16)
    new = cv2.imdecode(np.frombuffer(after, np.uint8), cv2.IMREAD_COLOR).astype(np.int16)
    inner = (slice(y1 + 6, y2 - 6), slice(x1 + 6, x2 - 6))
    assert np.abs(new - old)[inner].mean() > 30      # the stripes are concealed
    assert old[inner].std() > 60 and new[inner].std() < old[inner].std() / 3

    sidecar = json.loads(s3.get_object(Bucket=OUTPUT_BUCKET, Key=job["sidecar_key"])["Body"].read())
    record = sidecar["corrections"][-1]
    assert record["by"] == REVIEWER and record["removed"] == [] and len(record["added"]) == 1
    drawn = np.asarray(record["added"][0])
    assert np.abs(drawn - [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]).max() <= 2.0   # what was clicked
    events = [f for _, f in redis_client.xrange("plateveil:events") if f["job_id"] == job["job_id"]]
    assert events[-1].get("event") == "corrected" and events[-1]["plate_count"] == str(job["plate_count"] + 1)

    # the reloaded page shows the drawn plate as a reviewer's
    browser.refresh()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#svg-original polygon.by-reviewer")))
