"""The dashboard in a real headless Chromium (Debian's), against a live server.

Screenshots go to test-artifacts/api/ (looked at by a human; 2–3 are kept in docs/screenshots/).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from tests.api.conftest import Live, start_live
from tests.conftest import EXAMPLES, REPO, need_binary

from wattwise.api.schemas import AtRisk, ForecastPoint, ForecastView
from wattwise.model.values import Action, ActionKind, Decision, DecisionStatus

ARTIFACTS = REPO / "test-artifacts" / "api"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = need_binary("chromium")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def ui_live() -> Iterator[Live]:
    lv = start_live()
    try:
        yield lv
    finally:
        lv.server.stop()


def _page(browser: Browser, live: Live, token: str | None, width: int = 1440, height: int = 900) -> Page:
    page = browser.new_page(viewport={"width": width, "height": height})
    page.on("dialog", lambda d: d.accept())
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(live.url + ("/#token=" + token if token else "/"))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _load_w(page: Page, node: str) -> float:
    return float(page.locator(f'#tree .meter[data-id="{node}"]').first.get_attribute("data-load-w") or "nan")


def _forecast(live: Live) -> ForecastView:
    head = live.backend.graph.chain_loads(live.backend.psu_input_w(live.backend.clock.now_s()))
    load_w, cap_w = head.of("ups-h1-a")
    t0 = live.backend.clock.now_s()
    points = tuple(
        ForecastPoint(
            t_s=t0 + 60.0 * k,
            mean=load_w * (1 + 0.2 * math.sin(k / 6)),
            lower=load_w * (0.95 + 0.2 * math.sin(k / 6) - 0.02 * math.sqrt(k)),
            upper=load_w * (1.05 + 0.2 * math.sin(k / 6) + 0.02 * math.sqrt(k)),
        )
        for k in range(1, 61)
    )
    return ForecastView(
        device_id="ups-h1-a",
        metric="power_w",
        model="test fixture",
        interval_frac=0.9,
        issued_t_s=t0,
        capacity=cap_w,
        points=points,
    )


def test_empty_states_and_live_values(browser: Browser, ui_live: Live) -> None:
    page = _page(browser, ui_live, ui_live.token["viewer"])
    expect(page.get_by_test_id("site-name")).to_have_text("16-server generated site (seed 1)")
    expect(page.get_by_test_id("live")).to_contain_text("live", timeout=5000)
    expect(page.get_by_test_id("forecast-empty")).to_contain_text("no forecasts yet")
    expect(page.get_by_test_id("risk-empty")).to_contain_text("no predictions yet")
    expect(page.get_by_test_id("plan-empty")).to_contain_text("controller is not running")
    expect(page.get_by_test_id("running")).to_have_text("controller not running")
    expect(page.get_by_test_id("imbalance")).to_contain_text("A/B imbalance")
    expect(page.locator('[data-ups="ups-h1-a"]')).to_contain_text("state unknown (no telemetry)")
    expect(page.get_by_test_id("ups-runtime").first).to_have_text(re.compile(r"^\d+(\.\d)? (h|min)$"))
    first = _load_w(page, "utility-a")
    assert first > 0
    seen = {first}
    for _ in range(20):  # the backend ticks every 0.25 s and pushes SSE events
        page.wait_for_timeout(250)
        seen.add(_load_w(page, "utility-a"))
        if len(seen) >= 3:
            break
    assert len(seen) >= 3, f"live value did not change: {seen}"
    _shot(page, "01-empty-states-viewer")
    assert not page.errors  # type: ignore[attr-defined]
    page.close()


def test_operator_arms_and_approves(browser: Browser, ui_live: Live) -> None:
    page = _page(browser, ui_live, ui_live.token["operator"])
    expect(page.get_by_test_id("whoami")).to_have_text("operator-user (operator)")
    action = Action(
        kind=ActionKind.POWER_CAP, target_id="r00001-s3", value=240.0, reason="keep PDU L2 below 80 %", decision_id="d1"
    )
    decision = Decision(
        policy_name="psu_load_sharing",
        status=DecisionStatus.OK,
        actions=(action,),
        reasons=("pdu-r00001-a L2 forecast at 86 % within 10 min", "cap the lowest-priority server first"),
        t_s=ui_live.backend.clock.now_s(),
    )
    (command_id,) = ui_live.backend.propose(decision)
    ui_live.backend.publish_forecasts((_forecast(ui_live),))
    ui_live.backend.publish_predictions(
        (
            AtRisk(
                device_id="r00001-s7-psu1",
                kind="psu",
                risk="failure",
                probability_frac=0.72,
                horizon_s=3 * 86400.0,
                reason="ripple up 40 % in 48 h",
                model="test fixture",
            ),
        )
    )
    row = page.locator(f'tr[data-command="{command_id}"]')
    expect(row.get_by_test_id("action-state")).to_have_text("pending", timeout=5000)
    expect(page.get_by_test_id("forecast-band")).to_have_count(1, timeout=5000)
    page.get_by_test_id("mode-armed").click()
    expect(page.get_by_test_id("mode")).to_have_attribute("data-mode", "armed", timeout=5000)
    row.get_by_test_id("approve").click()
    expect(row.get_by_test_id("action-state")).to_have_text("approved (operator-user)", timeout=5000)
    page.get_by_test_id("whatif-target").select_option(index=0)  # side A
    page.get_by_test_id("whatif-run").click()
    expect(page.get_by_test_id("whatif-summary")).to_contain_text("lose utility-a, generator-a", timeout=5000)
    journal = page.get_by_test_id("journal")
    expect(journal).to_contain_text("approve", timeout=5000)
    expect(journal).to_contain_text("mode")
    expect(journal).to_contain_text("operator-user (operator)")
    _shot(page, "02-operator-armed-approved")
    assert not page.errors  # type: ignore[attr-defined]
    page.close()


def test_viewer_cannot_operate(browser: Browser, ui_live: Live) -> None:
    ui_live.backend.propose(
        Decision(
            policy_name="migration",
            status=DecisionStatus.OK,
            actions=(
                Action(kind=ActionKind.NODE_DRAIN, target_id="r00001-s5", reason="PSU at risk", decision_id="d2"),
            ),
            reasons=("psu failure probability 0.72 within 3 days",),
        )
    )
    page = _page(browser, ui_live, None)
    page.get_by_test_id("token-input").fill(ui_live.token["viewer"])
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("whoami")).to_have_text("viewer-user (viewer)")
    expect(page.get_by_test_id("mode-armed")).to_be_disabled()
    expect(page.get_by_test_id("whatif-run")).to_be_disabled()
    pending = page.locator("tr[data-command]").filter(has_text="pending").first
    expect(pending.get_by_test_id("approve")).to_be_disabled(timeout=5000)
    expect(page.get_by_test_id("ctl-note")).to_contain_text("read-only")
    mode_before = page.get_by_test_id("mode").get_attribute("data-mode")
    status = page.evaluate(
        """async (token) => (await fetch('/api/v1/mode', {method: 'POST',
            headers: {Authorization: 'Bearer ' + token, 'Content-Type': 'application/json'},
            body: JSON.stringify({mode: 'observe'})})).status""",
        ui_live.token["viewer"],
    )
    assert status == 403
    page.reload()
    expect(page.get_by_test_id("mode")).to_have_attribute("data-mode", mode_before or "", timeout=5000)
    _shot(page, "03-viewer-read-only")
    page.close()


def test_bad_token_shows_login(browser: Browser, ui_live: Live) -> None:
    page = _page(browser, ui_live, "ww_wrong-token-0000000000000")
    expect(page.get_by_test_id("login")).to_be_visible()
    expect(page.get_by_test_id("login-error")).to_have_text("token refused")
    page.close()


def test_wall_screen_on_a_two_hall_site(browser: Browser) -> None:
    lv = start_live(EXAMPLES / "two-hall-site.yaml")
    try:
        page = _page(browser, lv, lv.token["viewer"], width=2560, height=1440)
        expect(page.get_by_test_id("live")).to_contain_text("live", timeout=10_000)
        expect(page.locator("#pdu-note")).to_contain_text("busiest of 200 PDUs")
        assert page.locator("#tree .node").count() >= 24
        expect(page.locator(".ups-row")).to_have_count(4)  # many UPS: one compact line each
        page.get_by_test_id("whatif-target").select_option(index=0)
        expect(page.get_by_test_id("whatif-run")).to_be_disabled()  # viewer
        _shot(page, "04-wall-2560x1440-two-hall")
        page.set_viewport_size({"width": 1366, "height": 768})
        page.wait_for_timeout(300)
        page.screenshot(path=str(ARTIFACTS / "05-laptop-1366x768-two-hall.png"))
        assert not page.errors  # type: ignore[attr-defined]
        page.close()
    finally:
        lv.server.stop()
