"""The GETs of one Redfish poll: expanded collections, single resources, indexed answers."""

from __future__ import annotations

from wattwise.drivers.redfish_plan import Fetch, Leaf, RedfishPlan, index_resources, plan_fetches, poll_singly

PSUS = "/redfish/v1/Chassis/1/PowerSubsystem/PowerSupplies"
LEAVES = [
    Leaf(f"{PSUS}/PSU1", "PowerSupply", "p1", PSUS, 1),
    Leaf(f"{PSUS}/PSU1/Metrics", "Excerpts", "p1", PSUS, 2),
    Leaf(f"{PSUS}/PSU2", "PowerSupply", "p2", PSUS, 1),
    Leaf("/redfish/v1/Chassis/1/EnvironmentMetrics", "Excerpts", "srv"),
]


def test_one_get_per_collection_deep_enough_for_its_leaves() -> None:
    assert plan_fetches(LEAVES, 6) == [Fetch(PSUS, 2), Fetch("/redfish/v1/Chassis/1/EnvironmentMetrics")]
    assert Fetch(PSUS, 2).path == f"{PSUS}?$expand=.($levels=2)"
    assert Fetch(PSUS, 1).path == f"{PSUS}?$expand=."


def test_leaves_deeper_than_the_service_expands_are_fetched_alone() -> None:
    assert plan_fetches(LEAVES, 1) == [
        Fetch(PSUS, 1),
        Fetch(f"{PSUS}/PSU1/Metrics"),
        Fetch("/redfish/v1/Chassis/1/EnvironmentMetrics"),
    ]
    assert plan_fetches(LEAVES, 0) == [Fetch(leaf.url) for leaf in LEAVES]


def test_index_skips_links_and_ids_that_clash() -> None:
    answer = {
        "@odata.id": PSUS,
        "Members": [
            {"@odata.id": f"{PSUS}/PSU1", "Id": "PSU1", "Metrics": {"@odata.id": f"{PSUS}/PSU1/Metrics", "X": 1}},
            {"@odata.id": f"{PSUS}/PSU2/", "Id": "PSU2", "Metrics": {"@odata.id": f"{PSUS}/PSU2/Metrics"}},
            {"@odata.id": f"{PSUS}/PSU1", "Id": "copy-pasted"},
        ],
    }
    found = index_resources(answer)
    assert set(found) == {PSUS, f"{PSUS}/PSU2", f"{PSUS}/PSU1/Metrics"}  # PSU1 clashes; PSU2/Metrics is a link
    assert found[f"{PSUS}/PSU2"]["Id"] == "PSU2"


def test_poll_singly_keeps_the_other_members_expanded() -> None:
    plan = RedfishPlan(leaves=list(LEAVES))
    poll_singly(plan, {f"{PSUS}/PSU2"})
    assert plan_fetches(plan.leaves, 6) == [
        Fetch(PSUS, 2),
        Fetch(f"{PSUS}/PSU2"),
        Fetch("/redfish/v1/Chassis/1/EnvironmentMetrics"),
    ]
