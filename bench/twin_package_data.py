"""Copy the subsets of shared/datasets that the digital twin needs at run time into the package.

Run once (the outputs are committed): ``.venv/bin/python bench/twin_package_data.py``.
Every file written starts with ``#`` lines naming its source and licence.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("WATTWISE_DATASETS_DIR", REPO.parent / "shared" / "datasets"))
OUT = REPO / "src" / "wattwise" / "data"

N_PLANETLAB = 300
N_GOOGLE = 200


def _write(path: Path, header: list[str], rows: list[list[object]], gz: bool = False) -> None:
    buf = io.StringIO()
    for line in header:
        buf.write(f"# {line}\n")
    w = csv.writer(buf, lineterminator="\n")
    w.writerows(rows)
    data = buf.getvalue().encode()
    if gz:
        path.write_bytes(gzip.compress(data, mtime=0))
    else:
        path.write_bytes(data)
    print(f"wrote {path.relative_to(REPO)} ({len(rows)} rows)")


def specpower() -> None:
    src = DATASETS / "specpower_ssj2008" / "power_curves_11pt.csv"
    with src.open() as f:
        rows = list(csv.reader(f))
    head = rows[0]
    keep = [head.index(c) for c in head if c.startswith("watts_") or c in ("system", "spec_result_url")]
    out = [[r[i] for i in keep] for r in rows]
    _write(
        OUT / "specpower_curves_11pt.csv",
        [
            "source: SPECpower_ssj2008 published results (spec.org), 11-point curves as transcribed in",
            "Cloudslab/cloudsim PowerModelSpecPower*.java (GPL-3.0) and glelouet/optiplace; via shared/datasets.",
            "licence: SPEC fair-use rules: results attributed to SPEC, result URL in column spec_result_url.",
        ],
        out,
    )


def psu() -> None:
    src = DATASETS / "psu_efficiency" / "80plus_230v_internal_redundant_thresholds.csv"
    with src.open() as f:
        rows = list(csv.reader(f))
    _write(
        OUT / "psu_80plus_230v_redundant.csv",
        [
            "source: 80 PLUS 230 V internal redundant minimum efficiencies, as used in",
            "nsg-ethz/Fantastic-Joules-and-Where-to-Find-Them (MIT), Jacob et al., ACM IMC 2025.",
            "licence: MIT (compilation); programme owner 80 PLUS / CLEAResult.",
        ],
        rows,
    )
    src = DATASETS / "psu_efficiency" / "psu_efficiency_curve_pfe.csv"
    with src.open() as f:
        rows = list(csv.reader(f))
    _write(
        OUT / "psu_curve_pfe_600w.csv",
        [
            "source: measured-style efficiency curve of a 600 W front-end PSU, digitised by",
            "nsg-ethz/Fantastic-Joules-and-Where-to-Find-Them input/pfe-efficiency-curve.csv.",
            "licence: MIT. Cite Jacob et al., Fantastic Joules and Where to Find Them, ACM IMC 2025.",
        ],
        rows,
    )


def planetlab() -> None:
    src = DATASETS / "workload_planetlab_vm_cpu" / "planetlab_cpu_5min.csv.gz"
    with gzip.open(src, "rt") as f:
        rows = list(csv.reader(f))
    body = rows[1:]
    pick = np.linspace(0, len(body) - 1, N_PLANETLAB).astype(int)
    out = [rows[0]] + [body[i] for i in pick]
    _write(
        OUT / "traces_planetlab_cpu_5min.csv.gz",
        [
            f"source: beloglazov/planetlab-workload-traces (CoMon), {N_PLANETLAB} of 11746 day-VM series,",
            "evenly spaced in file order; values = CPU % per 5-min slot, unchanged. Also shipped in",
            "Cloudslab/cloudsim (GPL-3.0). licence: no licence file upstream; redistributed as in CloudSim.",
            "Cite Beloglazov & Buyya, CCPE 2012; Park & Pai, OSR 2006.",
        ],
        out,
        gz=True,
    )


def google() -> None:
    src = DATASETS / "workload_google2011_vm_cpu_mem" / "gcd_vms_cpu_mem_5min.csv.gz"
    series: dict[str, list[tuple[int, float, float]]] = {}
    with gzip.open(src, "rt") as f:
        for r in csv.DictReader(f):
            series.setdefault(r["vm"], []).append((int(r["step"]), float(r["cpu_pct"]), float(r["mem_pct"])))
    names = sorted(series)
    pick = [names[i] for i in np.linspace(0, len(names) - 1, N_GOOGLE).astype(int)]
    out: list[list[object]] = [["vm", "resource", *[f"c{k:03d}" for k in range(288)]]]
    for vm in pick:
        pts = sorted(series[vm])
        out.append([vm, "cpu", *[f"{p[1]:.2f}" for p in pts]])
        out.append([vm, "mem", *[f"{p[2]:.2f}" for p in pts]])
    _write(
        OUT / "traces_google2011_cpu_mem_5min.csv.gz",
        [
            "source: Google ClusterData2011 (CC-BY 4.0) as aggregated by HiPro-IT/CPU-and-Memory-resource-usage-",
            f"from-Google-Cluster-Data; {N_GOOGLE} of 1600 VMs (evenly spaced by name), CPU and memory % per 5 min.",
            "licence: CC-BY 4.0 (Google cluster-data trace). Cite the Google cluster-data trace.",
        ],
        out,
        gz=True,
    )


def _num(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def nut_runtime() -> None:
    root = DATASETS / "nut_ddl_device_dumps" / "dumps"
    out: list[list[object]] = [
        ["file", "power_nominal_va", "realpower_nominal_w", "load_pct", "charge_pct", "runtime_s"]
    ]
    for path in sorted(root.rglob("*.dev")):
        vals: dict[str, str] = {}
        for line in path.read_text(errors="replace").splitlines():
            m = re.match(r"^([a-z0-9_.]+):\s*(\S+)", line)
            if m:
                vals.setdefault(m.group(1), m.group(2))
        rt, load, charge = (
            _num(vals.get("battery.runtime")),
            _num(vals.get("ups.load")),
            _num(vals.get("battery.charge")),
        )
        va, w = _num(vals.get("ups.power.nominal")), _num(vals.get("ups.realpower.nominal"))
        if rt is None or load is None or charge is None or (va is None and w is None):
            continue
        if not (0 < rt < 200_000 and 0 < load <= 100 and 0 < charge <= 100):
            continue  # placeholder values (65535, 3932100, -60) and idle dumps say nothing about runtime
        out.append([str(path.relative_to(root)), va or "", w or "", load, charge, rt])
    _write(
        OUT / "nut_runtime_dumps.csv",
        [
            "source: networkupstools/nut-ddl device dumps (upsc snapshots contributed by NUT users);",
            "battery.runtime, ups.load, battery.charge, ups.power.nominal, ups.realpower.nominal extracted.",
            "licence: part of the Network UPS Tools project (GPL-2.0-or-later); attribution to NUT contributors.",
        ],
        out,
    )


def smd_shapes() -> None:
    root = DATASETS / "smd_server_machine"
    out: list[list[object]] = [["shape", "step_min", "cpu", "mem", "net", "anomalous"]]
    shape = 0
    for lab in sorted((root / "interpretation_label").glob("*.txt")):
        machine = lab.stem
        with gzip.open(root / "data" / f"{machine}_test.csv.gz", "rt") as fh:
            data = np.loadtxt(fh, delimiter=",", skiprows=1)
        for line in lab.read_text().splitlines()[:6]:
            a, b = (int(x) for x in line.split(":")[0].split("-"))
            lo, hi = max(0, a - 20), min(len(data), b + 21, a + 100)
            for t in range(lo, hi):
                row = data[t]
                out.append([shape, t - lo, f"{row[1]:.4f}", f"{row[6]:.4f}", f"{row[19]:.4f}", int(a <= t <= b)])
            shape += 1
    _write(
        OUT / "smd_anomaly_shapes.csv",
        [
            "source: SMD Server Machine Dataset (Su et al., KDD 2019), test segments around the publishers'",
            "interpretation-labelled anomalies (first 6 per machine, 20 min before to 20 min after, 1 row = 1 min),",
            "columns m00 (cpu), m05 (mem), m18 (net in), min-max normalised by the publishers.",
            "licence: MIT (NetManAIOps-SMD 2021; zhhlee/InterFusion).",
        ],
        out,
    )


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    specpower()
    psu()
    planetlab()
    google()
    nut_runtime()
    smd_shapes()
