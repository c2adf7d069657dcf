"""The learner's page in a real browser: Playwright driving Debian's Chromium
(by path, as tests/report/test_report_browser.py finds it: Playwright never
downloads a browser here) against a uvicorn server on loopback.

The server transcribes with the real ``dualasr.learner.transcribe`` on the
session's packaged tiny DO model (``do_package``, tests/learner/conftest.py).
That model is trained for two epochs, so what it hears is not the recording's
words: the assertions read the differences from the server's JSON and check
that the page shows exactly those.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from dualasr.learner.package import load_package
from dualasr.learner.serve import create_app, running

CHROMIUM = shutil.which("chromium")
ESPEAK = shutil.which("espeak-ng")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/install-system-deps.sh installs it)"),
    pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed (scripts/install-system-deps.sh installs it)"),
]

MEANT = "the cat sat on the mat"


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    """A learner's take, synthesized: "mat" said as "mad", "on" left out, "uh" added."""
    path = tmp_path_factory.mktemp("audio") / "take.wav"
    subprocess.run([ESPEAK, "-v", "en-us", "-w", str(path), "the cat sat uh the mad"], check=True)
    return path


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                              "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required"])  # fmt: skip
        yield b
        b.close()


def save_artifact(shot: Path) -> None:
    if os.environ.get("DUALASR_ARTIFACTS"):
        out = Path(os.environ["DUALASR_ARTIFACTS"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, out / shot.name)


def test_page_shows_the_differences_and_plays_each_span(browser, recording, do_package, tmp_path):
    errors = []
    with running(create_app({"en-do": load_package(do_package)})) as url:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/")
        page.wait_for_selector("#model option", state="attached")
        assert "synthetic voices" in page.inner_text("#provenance")

        page.set_input_files("#file", str(recording))
        page.fill("#text", MEANT)
        with page.expect_response("**/transcribe", timeout=120_000) as answer:
            page.click("#submit")
        assert answer.value.status == 200, answer.value.text()
        result = answer.value.json()
        page.wait_for_selector("#result:not([hidden])")

        # Every meant word is in the diff once, in order; what was heard differs from it
        # (the recording says "the cat sat uh the mad"; a two-epoch model hears worse).
        assert [d["Expected"] for d in result["diff"] if d["Expected"]] == MEANT.split()
        want = Counter(d["ErrorType"] for d in result["diff"])
        assert set(want) - {"None"}, want
        # One highlighted element per difference, by ErrorType, each type its own colour.
        for kind, n in want.items():
            assert page.locator(f'#diff .diff[data-error-type="{kind}"]').count() == n, kind
        colours = {kind: page.locator(f'#diff .diff[data-error-type="{kind}"]').first.evaluate(
            "e => getComputedStyle(e).backgroundColor") for kind in want}  # fmt: skip
        assert len(set(colours.values())) == len(want), colours
        assert page.locator(".legend span").count() == 4
        assert page.inner_text("#meaning") == MEANT and "as you typed" in page.inner_text("#meaning-source")
        assert page.inner_text("#surface") == result["surface"]["text"]
        # A two-epoch model is unsure of what it heard: the page says the result is
        # unreliable, with the server's warnings.
        assert result["reliable"] is False and "unreliable" in page.get_attribute("#reliability", "class")
        assert result["warnings"][0] in page.inner_text("#reliability")

        # Clicking a difference plays its span: playback starts at its Offset (less
        # the page's 0.1 s of context) and pauses at its end
        page.evaluate("""() => {
            const p = document.getElementById('player');
            window.__events = [];
            for (const t of ['play', 'pause']) p.addEventListener(t, () => window.__events.push([t, p.currentTime]));
        }""")
        # The longest difference that is not a match, found on the page as the
        # k-th element of its ErrorType (the page keeps the diff's order).
        wrong = max((d for d in result["diff"] if d["ErrorType"] != "None"), key=lambda d: d["Duration"])
        kind = wrong["ErrorType"]
        k = [d for d in result["diff"] if d["ErrorType"] == kind].index(wrong)
        start, end = wrong["Offset"] / 1e7, (wrong["Offset"] + wrong["Duration"]) / 1e7
        end = min(end, result["audio"]["duration"])  # playback cannot pass the recording's end
        button = page.locator(f'#diff .diff[data-error-type="{kind}"]').nth(k)
        assert wrong["Expected"] in button.inner_text() and wrong["Heard"] in button.inner_text()
        button.focus()
        page.keyboard.press("Enter")  # keyboard-usable
        page.wait_for_function("window.__events.some(e => e[0] === 'pause')", timeout=10_000)
        events = page.evaluate("window.__events")
        (played, t0), (paused, t1) = events[:2]
        assert played == "play" and abs(t0 - max(0.0, start - 0.1)) < 0.05, events
        assert paused == "pause" and end <= t1 < end + 0.4, events

        shot = tmp_path / "serve_page.png"
        page.screenshot(path=str(shot), full_page=True)
        save_artifact(shot)
        page.close()
    assert shot.stat().st_size > 20_000  # a blank page compresses to a few kB
    assert errors == []
