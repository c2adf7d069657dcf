"""report.html in a real browser: Debian's headless Chromium driven by Selenium.

Chromium and its driver come from apt (scripts/install-system-deps.sh installs
``chromium`` and ``chromium-driver``), the driver is given by path so Selenium
Manager never runs (it would try the network), and the test is skipped only
when those packages are absent.
"""

from __future__ import annotations

import re
import shutil
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dualasr.cli import app

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = shutil.which("chromium")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or not CHROMEDRIVER.exists(),
    reason="Debian's chromium and chromium-driver are not installed (scripts/install-system-deps.sh installs them)",
)

# Installed before any page script runs: records uncaught errors and failed
# resource loads (capture phase sees <img> errors, which do not bubble).
ERROR_CAPTURE = """
window.__errors = [];
window.addEventListener('error', function (e) {
  var t = e.target;
  window.__errors.push(t && t !== window && (t.src || t.href) ? 'load failed: ' + (t.src || t.href)
                                                              : String(e.message));
}, true);
window.addEventListener('unhandledrejection', function (e) { window.__errors.push(String(e.reason)); });
"""

IMAGES_STATE = """
return Array.from(document.images).map(function (img) {
  return {complete: img.complete, width: img.naturalWidth, src: img.src.slice(0, 40)};
});
"""


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,2000", "--disable-extensions", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as mp:
        # Browser and driver are given by path, so Selenium Manager has nothing to
        # resolve; offline mode makes sure it never reaches for the network anyway.
        mp.setenv("SE_OFFLINE", "true")
        drv = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    drv.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": ERROR_CAPTURE})
    yield drv
    drv.quit()


def open_page(driver, path: Path) -> tuple[list[dict], list[str], list[dict]]:
    """Load ``path``; return its images' state, captured script/load errors and
    the browser log's SEVERE entries."""
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(path.resolve().as_uri())
    driver.execute_async_script("var done = arguments[0]; "
                                "if (document.readyState === 'complete') done(); "
                                "else window.addEventListener('load', function () { done(); });")  # fmt: skip
    images = driver.execute_script(IMAGES_STATE)
    errors = driver.execute_script("return window.__errors || ['error capture not installed'];")
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return images, errors, severe


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_report_renders_in_chromium(driver, study_dir, tmp_path):
    result = CliRunner().invoke(app, ["report", str(study_dir)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == f"report: {study_dir / 'report.html'}"
    html = (study_dir / "report.html").read_text()
    # Self-contained: every src/href is a data URI or an in-page anchor.
    links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", html)
    assert links and all(u.startswith(("data:image/png;base64,", "#")) for u in links), links
    assert "http://" not in html and "https://" not in html

    images, errors, severe = open_page(driver, study_dir / "report.html")
    # ed_gap, training, cka_encoder, cka_decoder
    assert len(images) == 4, images
    assert all(img["complete"] and img["width"] > 0 for img in images), images
    assert errors == [], errors
    assert severe == [], severe
    assert (
        "DO lowers meaning CER by 1.00 points vs MSO"
        in driver.find_element("tag name", "body").text
    )

    shot = driver.get_screenshot_as_png()
    (tmp_path / "report.png").write_bytes(shot)
    width, height = png_size(shot)
    assert width >= 800 and height >= 600
    assert len(shot) > 20_000  # a blank page compresses to a few kB


def test_the_checks_catch_a_broken_page(driver, tmp_path):
    """The same checks fail on a page with a missing image and a script error,
    so a passing report test means something."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><img src="missing.png" alt="x">'
                    "<script>undefinedFunction();</script></body></html>")  # fmt: skip
    images, errors, severe = open_page(driver, page)
    assert images and not (images[0]["complete"] and images[0]["width"] > 0)
    assert any("undefinedFunction" in e for e in errors) and any("missing.png" in e for e in errors)
    assert severe
