"""The demo in a real browser (headless Debian Chromium, Playwright): assess a subset of dimensions, chat,
screenshots to test-artifacts/; corrupt and unplayable uploads, a new video resetting the page, an example."""

from __future__ import annotations

import pytest

from test_app import ROOT, served  # noqa: F401  (the app served on localhost, a fixture)
from videos import write_video

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"
KEPT = ["Noise", "Blur", "Overall"]  # the dimensions left ticked


@pytest.fixture(scope="module")
def browser_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        yield page
        browser.close()


def _wait_for_summary(page, text: str) -> None:
    page.wait_for_function(
        "text => document.querySelector('#summary').innerText.includes(text)", arg=text, timeout=60_000
    )


def _first_column(page, table: str) -> list[str]:
    cells = page.locator(f"#{table} [role=gridcell][data-col='0']")
    return [text.strip() for text in cells.all_inner_texts()]


def test_upload_assess_a_subset_then_chat(served, browser_page, tmp_path):
    page = browser_page
    ARTIFACTS.mkdir(exist_ok=True)
    video = write_video(tmp_path / "street.mp4", num_frames=150, width=192, height=144, fps=25)

    page.goto(served)
    page.wait_for_selector("#assess")
    page.locator("input[type=file]").first.set_input_files(str(video))
    page.locator("video").first.wait_for(state="attached")
    for label in ("Color", "Artifact", "Temporal"):
        page.locator("#dimensions label", has_text=label).click()
    page.click("#assess")
    _wait_for_summary(page, "Overall quality")

    assert _first_column(page, "ratings") == KEPT
    assert _first_column(page, "distortions") == ["Color", "Noise", "Artifact", "Blur", "Temporal"]
    assert "street.mp4" not in page.locator("#summary").inner_text()  # a verdict, not a file listing
    page.screenshot(path=str(ARTIFACTS / "app_after_assessment.png"), full_page=True)

    page.fill("#question textarea", "Is there any noise in this video?")
    page.click("#send")
    bot = page.locator("#chatbot [data-testid='bot']").last
    bot.wait_for(timeout=60_000)
    page.wait_for_function(
        "() => !document.querySelector('#chatbot .pending') &&"
        " [...document.querySelectorAll('#chatbot [data-testid=bot]')].pop().innerText.trim().length > 0",
        timeout=60_000,
    )
    assert page.locator("#chatbot [data-testid='user']").last.inner_text().strip() == "Is there any noise in this video?"
    assert page.locator("#question textarea").input_value() == ""
    page.screenshot(path=str(ARTIFACTS / "app_after_chat.png"), full_page=True)

    page.locator("button[aria-label='Clear']").first.click()  # the video's own clear button
    _wait_for_summary(page, "Upload a video or pick an example")
    assert page.locator("#chatbot [data-testid='user']").count() == 0  # a new video starts a new chat
    assert _first_column(page, "ratings") == []


def test_bad_and_unplayable_uploads_then_an_example_clip(served, browser_page, tmp_path):
    page = browser_page
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    page.goto(served)
    page.wait_for_selector("#assess")
    page.locator("input[type=file]").first.set_input_files(str(broken))
    page.click("#assess")
    toast = page.locator(".toast-body", has_text="broken.mp4")
    toast.first.wait_for(timeout=30_000)
    assert "Traceback" not in toast.first.inner_text()

    page.locator("button[aria-label='Clear']").first.click()
    old_format = write_video(tmp_path / "old.avi", num_frames=20, width=96, height=64, codec="mpeg4")
    page.locator("input[type=file]").first.set_input_files(str(old_format))
    page.locator("#preview video").wait_for(state="visible", timeout=30_000)  # browsers cannot play MPEG-4 part 2

    page.locator("button[aria-label='Clear']").first.click()
    page.locator("#preview").wait_for(state="hidden")
    page.get_by_text("Sharp, then blurred and stuttering").click()  # a shipped example clip
    page.locator("video").first.wait_for(state="attached")
    page.click("#assess")
    _wait_for_summary(page, "Overall quality")
    assert "of 144 (430×240, 6.0 s, h264)" in page.locator("#summary").inner_text()
