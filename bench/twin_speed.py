"""Twin speed and memory at 1k, 10k and 100k servers, against a per-object Python loop.

Run: ``.venv/bin/python bench/twin_speed.py`` (about two minutes). Each size runs in its own
process so peak memory (max RSS) is per size. The baseline is a straightforward simulation with
one Python object per server, PSU, PDU phase, UPS and rack, doing the same physics per step
(trace demand, SPECpower curve, PSU sharing and 80 PLUS efficiency, phase/PDU/UPS/feed sums,
UPS efficiency, rack thermal), timed on the same 1k-server site in the same run.
Writes ``bench/reports/twin.md``.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wattwise.model.generate import SiteSpec, generate_site
from wattwise.model.site import Site
from wattwise.sim.curves import psu_curves, server_curve_w
from wattwise.sim.twin import Twin

REPO = Path(__file__).resolve().parent.parent
REPORT = REPO / "bench" / "reports" / "twin.md"
SIZES = (1_000, 10_000, 100_000)
GOAL_X = 1000.0
GOAL_MEM_MIB = 1024.0


# ---- the per-object baseline ------------------------------------------------------------------
@dataclass
class ObjServer:
    curve_w: list[float]
    rack: str
    psus: list[ObjPsu] = field(default_factory=list)
    workloads: list[ObjWorkload] = field(default_factory=list)
    power_w: float = 0.0


@dataclass
class ObjPsu:
    rating_w: float
    loads: list[float]
    effs: list[float]
    pdu: str
    phase: int
    output_w: float = 0.0
    input_w: float = 0.0


@dataclass
class ObjWorkload:
    cpu_frac: float
    trace: list[float]
    phase_s: float


@dataclass
class ObjRack:
    capacity_w: float
    inlet_c: float = 24.0
    heat_w: float = 0.0


def _interp(x: float, xs: list[float], ys: list[float]) -> float:
    i = min(max(bisect_right(xs, x) - 1, 0), len(xs) - 2)
    f = (x - xs[i]) / (xs[i + 1] - xs[i])
    return ys[i] + f * (ys[i + 1] - ys[i])


class ObjectTwin:
    """One Python object per device; every step loops over all of them."""

    def __init__(self, site: Site, twin: Twin) -> None:
        curves = psu_curves()
        bank = twin.bank
        self.racks = {r.id: ObjRack(r.cooling_capacity_w) for r in site.racks}
        self.servers: list[ObjServer] = []
        by_id: dict[str, ObjServer] = {}
        outlet_phase = {o.id: (p.id, o.phase) for p in site.pdus for o in p.outlets}
        for s in site.servers:
            srv = ObjServer(list(server_curve_w(s.idle_w, s.peak_w, s.model, s.power_curve_w)), s.rack)
            for p in s.psus:
                loads, effs = curves.get(p.efficiency, curves["80plus_platinum"])
                pdu, ph = outlet_phase[p.input]
                srv.psus.append(ObjPsu(p.rating_w, list(loads), list(effs), pdu, ph))
            self.servers.append(srv)
            by_id[s.id] = srv
        for k, w in enumerate(site.workloads):
            row = int(twin.work.wl_row[k])
            trace = list(bank.cpu_frac[row] / max(bank.mean_cpu_frac[row], 0.02))
            by_id[w.server].workloads.append(ObjWorkload(w.cpu_frac, trace, float(twin.work.wl_phase_s[k])))
        self.pdu_parent = {p.id: p.input for p in site.pdus}
        self.ups_parent = {u.id: u.input for u in site.ups}
        self.ats_parent = {a.id: a.preferred_source for a in site.ats}
        self.t_s = 0.0

    def step(self, dt_s: float) -> float:
        self.t_s += dt_s
        phase_w: dict[tuple[str, int], float] = {}
        for r in self.racks.values():
            r.heat_w = 0.0
        for s in self.servers:
            u = 0.0
            for w in s.workloads:
                x = ((self.t_s + w.phase_s) / 300.0) % 288
                lo = int(x)
                v = w.trace[lo] + (x - lo) * (w.trace[(lo + 1) % 288] - w.trace[lo])
                u += w.cpu_frac * min(v, 3.0)
            u = min(u, 1.0)
            s.power_w = _interp(u, [k / 10 for k in range(11)], s.curve_w)
            self.racks[s.rack].heat_w += s.power_w
            for p in s.psus:
                p.output_w = s.power_w / len(s.psus)
                eff = _interp(min(p.output_w / p.rating_w, 1.0), p.loads, p.effs)
                p.input_w = p.output_w / eff
                key = (p.pdu, p.phase)
                phase_w[key] = phase_w.get(key, 0.0) + p.input_w
        node_w: dict[str, float] = {}
        for (pdu, _), w in phase_w.items():
            node_w[pdu] = node_w.get(pdu, 0.0) + w
        for pdu, parent in self.pdu_parent.items():
            node_w[parent] = node_w.get(parent, 0.0) + node_w.get(pdu, 0.0)
        for ups, parent in self.ups_parent.items():
            out = node_w.get(ups, 0.0)
            node_w[parent] = node_w.get(parent, 0.0) + out / 0.94
        for ats, parent in self.ats_parent.items():
            node_w[parent] = node_w.get(parent, 0.0) + node_w.get(ats, 0.0)
        for r in self.racks.values():
            target = 24.0 + 40.0 * max(0.0, r.heat_w - r.capacity_w) / r.capacity_w
            r.inlet_c += (target - r.inlet_c) * (1 - np.exp(-dt_s / 90.0))
        return sum(s.power_w for s in self.servers)


# ---- measurement ----------------------------------------------------------------------------
def _steps_for(n: int) -> int:
    return {1_000: 3000, 10_000: 1000, 100_000: 100}.get(n, 200)


def measure(n: int) -> dict[str, float]:
    """Build and run a twin of ``n`` servers in this process; returns the figures."""
    t0 = time.perf_counter()
    site = generate_site(SiteSpec(servers=n, seed=0))
    t_site = time.perf_counter() - t0
    t0 = time.perf_counter()
    twin = Twin(site, seed=0)
    t_build = time.perf_counter() - t0
    steps = _steps_for(n)
    twin.step(1.0)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        twin.step(1.0)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    t0 = time.perf_counter()
    readings = twin.readings()
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    twin.snapshot()
    t_snap = time.perf_counter() - t0
    out = {
        "servers": n,
        "psus": len(twin.psu.bus),
        "workloads": len(site.workloads),
        "steps": steps,
        "site_build_s": t_site,
        "twin_build_s": t_build,
        "ms_per_step": 1000 * wall / steps,
        "x_realtime": steps / wall,
        "cpu_ms_per_step": 1000 * cpu / steps,
        "x_realtime_cpu": steps / max(cpu, 1e-9),
        "readings": len(readings),
        "readings_ms": 1000 * t_read,
        "snapshot_ms": 1000 * t_snap,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if n == 1_000:
        obj = ObjectTwin(site, twin)
        obj_steps = 50
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(obj_steps):
            obj.step(1.0)
        obj_wall = time.perf_counter() - t0
        out["object_loop_cpu_ms_per_step"] = 1000 * (time.process_time() - c0) / obj_steps
        out["object_loop_x_realtime"] = obj_steps / obj_wall
        out["object_loop_ms_per_step"] = 1000 * obj_wall / obj_steps
        # The same work in the same process, right after: vectorized again for a fair pairing.
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(obj_steps):
            twin.step(1.0)
        out["paired_vector_ms_per_step"] = 1000 * (time.perf_counter() - t0) / obj_steps
        out["paired_vector_cpu_ms_per_step"] = 1000 * (time.process_time() - c0) / obj_steps
    return out


def _run_child(n: int) -> dict[str, float]:
    res = subprocess.run(
        [sys.executable, __file__, "--one", str(n)], capture_output=True, text=True, check=True, cwd=REPO
    )
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


def _report(rows: list[dict[str, float]]) -> str:
    base = next(r for r in rows if r["servers"] == 1_000)
    ratio = base["object_loop_ms_per_step"] / base["paired_vector_ms_per_step"]
    ratio_cpu = base["object_loop_cpu_ms_per_step"] / base["paired_vector_cpu_ms_per_step"]
    ten = next((r for r in rows if r["servers"] == 10_000), None)
    lines = [
        "# Twin speed and memory",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average at start {os.getloadavg()[0]:.1f} (2 cores; wall clock includes any contention).",
        "Sites from `generate_site(SiteSpec(servers=N, seed=0))`: 2N servers with 2 PSUs each, racklet racks, "
        "A/B feeds + generators, ATS, UPS, 3-phase PDUs; workloads driven by packaged PlanetLab traces; 1 s steps "
        "with the timeline recorded. Each size runs in a fresh process; max RSS is the whole process "
        "(interpreter, NumPy, pydantic site model and the twin).",
        "",
        "Wall-clock figures include any contention for the cores (load average above); CPU-time figures "
        "(`time.process_time`, this process only; the step is single-threaded NumPy) are what a dedicated "
        "core would see.",
        "",
        "| servers | PSUs | workloads | steps | wall ms/step | × real time (wall) | CPU ms/step | × real time (CPU) "
        "| readings (count, ms) | snapshot ms | max RSS MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['servers']:,} | {r['psus']:,} | {r['workloads']:,} | {r['steps']} | {r['ms_per_step']:.2f} "
            f"| {r['x_realtime']:,.0f} | {r['cpu_ms_per_step']:.2f} | {r['x_realtime_cpu']:,.0f} "
            f"| {r['readings']:,}, {r['readings_ms']:.0f} | {r['snapshot_ms']:.1f} "
            f"| {r['max_rss_mib']:.0f} |"
        )
    lines += [
        "",
        "## Baseline: one Python object per device (same 1k-server site, same process)",
        "",
        f"- per-object loop: {base['object_loop_ms_per_step']:.1f} ms/step wall, "
        f"{base['object_loop_cpu_ms_per_step']:.1f} ms/step CPU ({base['object_loop_x_realtime']:.0f}× real time)",
        f"- vectorized twin, measured right after it: {base['paired_vector_ms_per_step']:.2f} ms/step wall, "
        f"{base['paired_vector_cpu_ms_per_step']:.2f} ms/step CPU",
        f"- **speed-up {ratio:.0f}× (wall), {ratio_cpu:.0f}× (CPU)** — and the baseline does less: no outlets, "
        "breakers, ATS, battery, degradation, processors or accounting",
        "",
        "## Goals",
        "",
    ]
    if ten is not None:
        ok_x = "met" if ten["x_realtime"] >= GOAL_X else "NOT met"
        ok_c = "met" if ten["x_realtime_cpu"] >= GOAL_X else "NOT met"
        ok_m = "met" if ten["max_rss_mib"] <= GOAL_MEM_MIB else "NOT met"
        lines.append(f"- ≥ {GOAL_X:.0f}× real time at 10k servers, wall clock: {ten['x_realtime']:,.0f}× — {ok_x}")
        lines.append(f"- ≥ {GOAL_X:.0f}× real time at 10k servers, CPU time: {ten['x_realtime_cpu']:,.0f}× — {ok_c}")
        lines.append(f"- ≤ 1 GiB at 10k servers: {ten['max_rss_mib']:.0f} MiB max RSS — {ok_m}")
    lines += ["", f"Reproduce: `.venv/bin/python bench/twin_speed.py` (raw figures: `{REPORT.stem}.json`).", ""]
    return "\n".join(lines)


def main() -> None:
    rows = []
    for n in SIZES:
        r = _run_child(n)
        rows.append(r)
        print(
            f"{n:>7,} servers: {r['ms_per_step']:7.2f} ms/step  {r['x_realtime']:8,.0f}x real time  "
            f"(CPU {r['cpu_ms_per_step']:.2f} ms/step, {r['x_realtime_cpu']:,.0f}x)  "
            f"max RSS {r['max_rss_mib']:6.0f} MiB  readings {r['readings']:,} in {r['readings_ms']:.0f} ms"
        )
        if "object_loop_ms_per_step" in r:
            print(
                f"          per-object loop {r['object_loop_ms_per_step']:.1f} ms/step vs vectorized "
                f"{r['paired_vector_ms_per_step']:.2f} ms/step (same run)"
            )
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(_report(rows))
    REPORT.with_suffix(".json").write_text(json.dumps(rows, indent=2))
    print(f"wrote {REPORT.relative_to(REPO)}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(measure(int(sys.argv[2]))))
    else:
        main()
