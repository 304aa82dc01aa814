"""Which levels each server's power reading was taken at (``control/read_levels``)."""

from __future__ import annotations

import numpy as np

from wattwise.act.actuator import Verdict
from wattwise.act.base import Phase
from wattwise.control.read_levels import ReadLevels
from wattwise.decide.index import SiteIndex
from wattwise.model.generate import SiteSpec, generate_site
from wattwise.model.values import Action, ActionKind, Decision, DecisionStatus


def setup() -> tuple[ReadLevels, SiteIndex, int, int]:
    ix = SiteIndex.from_site(generate_site(SiteSpec(servers=40, servers_per_rack=10, services=8, seed=3)))
    w = 0
    return ReadLevels(ix), ix, int(ix.wl_service[w]), int(ix.wl_server[w])


def decision(*actions: Action) -> Decision:
    return Decision(policy_name="test", status=DecisionStatus.OK, actions=actions)


def test_a_shed_counts_from_its_decision_and_only_once_acknowledged() -> None:
    rl, ix, svc, srv = setup()
    levels = np.ones(len(ix.service_ids))
    shed = Action(kind=ActionKind.SERVICE_SHED, target_id=ix.service_ids[svc])
    rl.expect([decision(shed)], levels, now_s=100.0)
    read_s = np.full(len(ix.server_ids), 99.0)
    after = levels.copy()
    after[svc] = 0.0
    at_read, restart = rl.levels(read_s, after, ix.wl_server, now_s=101.0)
    assert at_read[ix.wl_service == svc].min() == 0.0  # not acknowledged yet: the present level
    assert not restart.any()
    rl.acknowledged([Verdict(shed, Phase.ACKED)])
    at_read, restart = rl.levels(read_s, after, ix.wl_server, now_s=102.0)
    assert np.all(at_read[ix.wl_service == svc] == 1.0)  # read at 99 s, before the shed at 100 s
    assert not restart.any()
    read_s[srv] = 100.0  # the decision saw this reading: still from before
    at_read, _ = rl.levels(read_s, after, ix.wl_server, now_s=103.0)
    assert at_read[(ix.wl_service == svc) & (ix.wl_server == srv)][0] == 1.0
    read_s[srv] = 104.0  # a reading from after the shed: present levels, and the peaks start again
    at_read, restart = rl.levels(read_s, after, ix.wl_server, now_s=105.0)
    assert at_read[(ix.wl_service == svc) & (ix.wl_server == srv)][0] == 0.0
    assert restart[srv]
    assert int(restart.sum()) == 1
    _, restart = rl.levels(read_s, after, ix.wl_server, now_s=106.0)
    assert not restart.any()  # once per change


def test_failed_or_refused_changes_are_forgotten() -> None:
    rl, ix, svc, _ = setup()
    levels = np.ones(len(ix.service_ids))
    shed = Action(kind=ActionKind.SERVICE_SHED, target_id=ix.service_ids[svc])
    rl.expect([decision(shed)], levels, now_s=100.0)
    rl.acknowledged([Verdict(shed, Phase.FAILED)])
    rl.acknowledged([Verdict(shed, Phase.ACKED)])  # a late answer to a forgotten command changes nothing
    assert np.isneginf(rl.changed_s).all()


def test_a_restore_counts_from_the_first_plan_after_its_acknowledgement() -> None:
    rl, ix, svc, srv = setup()
    levels = np.ones(len(ix.service_ids))
    levels[svc] = 0.0
    restore = Action(kind=ActionKind.SERVICE_RESTORE, target_id=ix.service_ids[svc], value=1.0)
    rl.expect([decision(restore)], levels, now_s=100.0)
    rl.acknowledged([Verdict(restore, Phase.ACKED)])
    read_s = np.full(len(ix.server_ids), 101.0)  # read after the decision, before the next plan
    at_read, _ = rl.levels(read_s, np.ones(len(ix.service_ids)), ix.wl_server, now_s=110.0)
    assert at_read[(ix.wl_service == svc) & (ix.wl_server == srv)][0] == 0.0
    assert rl.changed_s[svc] == 110.0


def test_other_actions_are_not_level_changes() -> None:
    rl, ix, _, _ = setup()
    levels = np.ones(len(ix.service_ids))
    off = Action(kind=ActionKind.OUTLET_OFF, target_id="any-outlet")
    unknown = Action(kind=ActionKind.SERVICE_SHED, target_id="svc-unknown")
    rl.expect([decision(off, unknown)], levels, now_s=100.0)
    rl.acknowledged([Verdict(off, Phase.ACKED), Verdict(unknown, Phase.ACKED)])
    assert np.isneginf(rl.changed_s).all()
