"""Regenerate the example sites in examples/ (deterministic)."""

from pathlib import Path

from wattwise.model.generate import SiteSpec, generate_site
from wattwise.model.loader import dump_site

EXAMPLES = {
    "single-rack": (
        "One rack of 16 2N servers: utility feeds A/B (generator backup through an ATS per side), "
        "a UPS and a three-phase PDU per side.",
        SiteSpec(servers=16, servers_per_rack=16, racks_per_hall=1, racklet_racks_per_hall=0, services=8,
                 event_processors=2, seed=1, site_id="single-rack"),
    ),
    "racklet-pod": (
        "A pod of four racklet racks: each racklet has a 48 V power module of four 3 kW rectifiers (A/B) "
        "and a 30 kW liquid cooling module.",
        SiteSpec(servers=48, servers_per_rack=12, racks_per_hall=4, racklet_racks_per_hall=4, services=12,
                 event_processors=4, seed=2, site_id="racklet-pod"),
    ),
    "two-hall-site": (
        "Two halls, ~2 000 servers, 200 services in a dependency DAG, event processors; A/B feeds with "
        "generators behind an ATS per side, 2N UPS per hall.",
        SiteSpec(servers=2000, seed=3, site_id="two-hall-site"),
    ),
}

if __name__ == "__main__":
    out = Path(__file__).resolve().parent.parent / "examples"
    for name, (doc, spec) in EXAMPLES.items():
        header = f"# {doc}\n# Regenerate with: python scripts/make_examples.py\n"
        (out / f"{name}.yaml").write_text(header + dump_site(generate_site(spec)))
