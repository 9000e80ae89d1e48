"""The web page at ``/`` in a real browser: Chromium (Debian's, driven by Playwright) picks jfk,
shows its transcript with times and downloads srt and vtt from the real server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import srt
from playwright.sync_api import Browser, sync_playwright

from dattavani.config import config_from_dict
from served import RunningServer

#: Playwright's own browser download is out of reach here; Debian's Chromium is used instead.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.fail("Chromium is needed for the page test: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tiny_en_ggml: Path, test_device: str) -> Iterator[RunningServer]:
    config = config_from_dict({"server": {"device": test_device, "access_log": False}})
    with RunningServer(config, model=str(tiny_en_ggml)) as running:
        running.wait_ready()
        yield running


def test_page_transcribes_jfk_and_downloads_subtitles(
    browser: Browser, server: RunningServer, jfk_audio: Path, tmp_path: Path
) -> None:
    page = browser.new_page()
    page.goto(server.base_url + "/")
    # The model list comes from /v1/models: the served model first, then whisper-1.
    page.wait_for_function("document.querySelectorAll('#model option').length >= 2")
    page.set_input_files("#file", str(jfk_audio))
    page.click("#go")
    page.wait_for_selector("#segments li", timeout=120_000)
    page.wait_for_selector("#downloads:not([hidden])")
    lines = page.locator("#segments li").all_inner_texts()
    assert lines[0].startswith("0:00 → ")
    assert "Americans" in " ".join(lines)
    assert "english" in page.inner_text("#status")

    for link, check in (("#srt", "srt"), ("#vtt", "vtt")):
        with page.expect_download(timeout=120_000) as download_info:
            page.click(link)
        target = tmp_path / download_info.value.suggested_filename
        download_info.value.save_as(target)
        text = target.read_text()
        if check == "srt":
            cues = list(srt.parse(text))
            assert "Americans" in cues[0].content
        else:
            assert text.startswith("WEBVTT") and "Americans" in text
    page.close()
