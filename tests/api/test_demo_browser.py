"""The ``wattwise demo`` dashboard in a real headless Chromium: live values, arm and disarm.

The screenshot goes to test-artifacts/demo/demo-live.png (looked at by a human; a copy is kept
as docs/screenshots/demo-live.png).
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from tests.api.test_dashboard import CHROMIUM_ARGS
from tests.cli.test_demo import TOKEN, Demo, start_demo
from tests.conftest import REPO, need_binary

ARTIFACTS = REPO / "test-artifacts" / "demo"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = need_binary("chromium")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _load_w(page: Page, node: str) -> float:
    return float(page.locator(f'#tree .meter[data-id="{node}"]').first.get_attribute("data-load-w") or "nan")


def _journal_has(c: httpx.Client, kind: str, actor: str) -> bool:
    before: int | None = None
    for _ in range(100):
        params = {"limit": 500} if before is None else {"limit": 500, "before_seq": before}
        items = c.get("/api/v1/journal", params=params).json()["items"]
        if any(e["kind"] == kind and e["actor"] == actor for e in items):
            return True
        if not items:
            return False
        before = items[-1]["seq"]
    return False


def test_demo_dashboard_live_arm_disarm(browser: Browser, tmp_path: Path) -> None:
    demo: Demo = start_demo(tmp_path, "--speed", "10", "--lead-in-s", "40")
    try:
        admin = demo.wait_for(TOKEN, 60.0).group(1)
        with httpx.Client(base_url=demo.url, headers={"Authorization": f"Bearer {admin}"}, timeout=10.0) as c:
            r = c.post("/api/v1/tokens", json={"name": "operator-user", "role": "operator"})
            assert r.status_code in (200, 201), r.text
            operator = r.json()["token"]
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.on("dialog", lambda d: d.accept())
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{demo.url}/#token={operator}")
        expect(page.get_by_test_id("whoami")).to_have_text("operator-user (operator)", timeout=15_000)
        expect(page.get_by_test_id("running")).not_to_have_text("controller not running", timeout=30_000)
        expect(page.get_by_test_id("mode")).to_have_attribute("data-mode", "armed", timeout=15_000)
        seen = {_load_w(page, "utility-a")}
        deadline = time.monotonic() + 40.0
        while len(seen) < 3 and time.monotonic() < deadline:  # a tick every 2 s pushes new telemetry
            page.wait_for_timeout(1000)
            seen.add(_load_w(page, "utility-a"))
        assert len(seen) >= 3, f"live value did not change: {seen}"
        page.get_by_test_id("mode-observe").click()
        expect(page.get_by_test_id("mode")).to_have_attribute("data-mode", "observe", timeout=10_000)
        page.get_by_test_id("mode-armed").click()
        expect(page.get_by_test_id("mode")).to_have_attribute("data-mode", "armed", timeout=10_000)
        with httpx.Client(base_url=demo.url, headers={"Authorization": f"Bearer {operator}"}, timeout=10.0) as c:
            assert c.get("/api/v1/status").json()["mode"] == "armed"
            assert _journal_has(c, "mode", "operator-user")
        page.wait_for_timeout(3000)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(ARTIFACTS / "demo-live.png"))
        page.screenshot(path=str(ARTIFACTS / "demo-live-full.png"), full_page=True)
        assert re.search(r"\d", page.get_by_test_id("live").inner_text())  # "live · hh:mm:ssZ"
        assert not errors
        page.close()
        demo.proc.send_signal(signal.SIGINT)
        assert demo.proc.wait(timeout=20) == 0
    finally:
        demo.close()
