"""The HTML report in a real browser: headless Chromium opens it from disk.

Needs Debian's ``chromium`` and the ``playwright`` Python package (no browser
download: Playwright drives the system Chromium). Skipped, with the reason, when
either is missing. Screenshots go to ``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import sanitizer.checks.backdoor
import sanitizer.checks.outliers  # noqa: F401  (register the checks the tests enable)
from sanitizer import Sanitizer
from sanitizer.config import CheckConfig, SanitizerConfig

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("SANITIZER_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
#: Flags that work as root in a container, with nothing phoning home.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE_IMG = "<img src=x onerror=\"document.title='pwned';alert(1)\">"
HOSTILE_SCRIPT = "<script>alert(document.cookie)</script>"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="browser test needs the playwright package (pip install playwright)",
    )
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"browser test needs Chromium at {CHROMIUM} (apt-get install chromium)")
    profile = tmp_path_factory.mktemp("chromium-profile")  # a new, empty user-data-dir
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1200, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def reports(
    reference: pd.DataFrame, clean_batch: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, list[str]]]:
    """report.html of a clean and of a poisoned batch, on disk, with their failing checks."""
    config = SanitizerConfig(
        label_column="label",
        id_columns=("record_id",),
        checks={"outliers": CheckConfig(), "backdoor": CheckConfig()},
    )
    fitted = Sanitizer(config=config).fit(reference)
    out = tmp_path_factory.mktemp("reports")
    poisoned = clean_batch.copy().astype({"region": object, "plan": object})
    rows = np.random.default_rng(1).choice(len(poisoned), 20, replace=False)
    poisoned.loc[rows, "x3"] = 1.2345  # a backdoor trigger on 5% of the rows ...
    poisoned.loc[rows, "label"] = 1  # ... tied to one label
    poisoned.loc[3, "region"] = HOSTILE_IMG
    poisoned.loc[4, "plan"] = HOSTILE_SCRIPT
    result = {}
    for name, batch in (("clean", clean_batch), ("quarantine", poisoned)):
        report = fitted.scan(batch)
        assert report.verdict == ("pass" if name == "clean" else "quarantine")
        path = out / f"{name}" / "report.html"
        path.parent.mkdir()
        page = report.to_html(
            title=f"Scan of {name}.csv",
            batch=batch,
            reference=reference,
            sanitizer=fitted,
            batch_id=f"{name}-0001",
            sha256="0" * 64,
        )
        path.write_text(page, encoding="utf-8")
        result[name] = (path, [c.name for c in report.failing_checks])
    return result


@pytest.mark.parametrize("name", ["clean", "quarantine"])
def test_report_opens_offline_and_shows_verdict_and_failing_checks(
    browser: Any, reports: dict[str, tuple[Path, list[str]]], name: str
) -> None:
    path, failing = reports[name]
    url = path.as_uri()
    page = browser.new_page()
    console_errors: list[str] = []
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console_errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        page.goto(url, wait_until="load")
        page.wait_for_load_state("networkidle")

        verdict = page.locator("#verdict h1").inner_text()
        assert verdict == ("PASS" if name == "clean" else "QUARANTINE")
        rows = page.locator("#checks tr.fail, #checks tr.error")
        shown = rows.locator("td:first-child").all_inner_texts()
        assert [s.strip() for s in shown] == failing
        for i, check in enumerate(failing):
            section = page.locator(f"#check-{i}")
            assert section.is_visible()
            assert f"{check}: FAIL" in section.locator("h2").inner_text()
        if name == "quarantine":
            assert failing and "backdoor" in failing
            figure = page.locator("section.check svg").first
            box = figure.bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 50
            # hostile cells are on the page as text, and nothing ran
            assert page.get_by_text(HOSTILE_SCRIPT).count() >= 1
            assert page.title().startswith("QUARANTINE")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"report-{name}.png"), full_page=True)
    finally:
        page.close()
    assert console_errors == []
    assert dialogs == []
    assert requests == [url]  # the file itself, nothing else: no fonts, images, scripts
