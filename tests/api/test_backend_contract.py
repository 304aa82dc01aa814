"""Contract every ApiBackend must meet (StaticBackend today; add the controller's adapter to BACKENDS)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from tests.api.conftest import DEMO_SITE
from tests.api.test_live_backend import make_live

from wattwise.api.base import ApiBackend
from wattwise.api.schemas import Actor, ControllerStatus, Event, Headroom, Role, SiteView
from wattwise.api.static_backend import StaticBackend
from wattwise.model.clock import SimClock
from wattwise.model.loader import load_site
from wattwise.model.site import Site

SITE = load_site(DEMO_SITE)
OPS = Actor(name="contract-op", role=Role.OPERATOR)

BACKENDS: dict[str, Callable[[Site], ApiBackend]] = {
    "static": lambda site: StaticBackend(site, clock=SimClock(1_000.0)),
    "static-animated": lambda site: StaticBackend(site, clock=SimClock(1_000.0), animate=True, tick_s=0.01),
    "live": lambda site: make_live(site)[0],
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> ApiBackend:
    b = BACKENDS[request.param](SITE)
    assert isinstance(b, ApiBackend)
    return b


async def test_reads_answer_for_the_site(backend: ApiBackend) -> None:
    site = await backend.site()
    assert isinstance(site, SiteView) and site.id == SITE.id
    assert {n.id for n in site.nodes} >= {f.id for f in SITE.feeds}
    head = await backend.headroom(1)
    assert isinstance(head, Headroom) and head.pdus_shown == 1 and head.pdus_total == len(SITE.pdus)
    assert all(abs(n.headroom_w - (n.capacity_w - n.load_w)) < 1e-6 for n in head.nodes)
    assert len(await backend.ups()) == len(SITE.ups)
    page = await backend.devices("pdu", 0, 10)
    assert page.total == len(SITE.pdus) and all(d.kind == "pdu" for d in page.items)
    assert isinstance(await backend.status(), ControllerStatus)
    for read in (backend.forecasts, backend.predictions, backend.plan):
        result = await read()
        assert result.note or getattr(result, "items", None) or getattr(result, "decisions", None)


async def test_unknown_ids_raise_key_error(backend: ApiBackend) -> None:
    with pytest.raises(KeyError):
        await backend.history("no-such-device", "power_w", None, None, 10)
    with pytest.raises(KeyError):
        await backend.set_maintenance("no-such-device", True, OPS, "")
    with pytest.raises(KeyError):
        await backend.decide_action("no-such-command", True, OPS, "")
    with pytest.raises(KeyError):
        await backend.what_if(("no-such-device",), OPS)


async def test_every_mutation_is_journaled_with_its_actor(backend: ApiBackend) -> None:
    before = (await backend.journal(1, None)).total
    await backend.set_mode("dry-run", OPS, "contract")
    await backend.set_maintenance(SITE.pdus[0].id, True, OPS, "contract")
    await backend.what_if((SITE.feeds[0].id,), OPS)
    await backend.journal_api_event(OPS, "token-issue", "someone", "role viewer")
    page = await backend.journal(10, None)
    assert page.total == before + 4
    assert [e.actor for e in page.items[:4]] == [OPS.name] * 4
    assert (await backend.status()).mode == "dry-run"


async def test_events_flow_and_end_on_stop(backend: ApiBackend) -> None:
    await backend.start()
    events = backend.events()
    got: list[Event] = []

    async def consume() -> None:
        async for e in events:
            got.append(e)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    await backend.set_mode("armed", OPS, "")
    await asyncio.sleep(0.05)
    await backend.stop()
    await asyncio.wait_for(task, 2.0)  # the subscription ends when the backend stops
    assert {"status", "journal"} <= {e.kind for e in got}
