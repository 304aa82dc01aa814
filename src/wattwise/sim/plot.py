"""PNG plot of a scenario run: feed and UPS load, battery charge, temperatures, events."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from wattwise.sim.runner import RunResult  # noqa: E402

MAX_EVENT_LABELS = 64
_SKIP = ("reset by technician",)


def _event_marks(result: RunResult) -> list[tuple[float, str]]:
    """Events worth a vertical line: injections and state changes, one label per (time, text)."""
    marks: list[tuple[float, str]] = []
    seen: set[tuple[float, str]] = set()
    for t, text in result.events:
        short = text.replace("inject ", "")
        if any(s in text for s in _SKIP) or (t, short) in seen:
            continue
        seen.add((t, short))
        marks.append((t, short))
    return marks


def plot_run(result: RunResult, path: Path, feed_capacity_w: dict[str, float] | None = None) -> Path:
    """Write a 4-panel PNG of ``result`` to ``path`` and return it."""
    tl = result.timeline
    t_min = tl["t_s"] / 60.0
    fig = plt.figure(figsize=(15, 11), constrained_layout=True)
    grid = fig.add_gridspec(4, 2, width_ratios=(4.2, 1.3))
    axes = [fig.add_subplot(grid[0, 0])]
    axes += [fig.add_subplot(grid[i, 0], sharex=axes[0]) for i in range(1, 4)]
    text_ax = fig.add_subplot(grid[:, 1])
    text_ax.axis("off")
    ax = axes[0]
    for k, fid in enumerate(result.feed_ids):
        series = tl["feed_load_w"][:, k] / 1000.0
        if series.max() > 0:
            line = ax.plot(t_min, series, lw=1.2, label=fid)[0]
            cap = (feed_capacity_w or {}).get(fid)
            if cap:
                ax.axhline(cap / 1000.0, color=line.get_color(), ls=":", lw=1)
    ax.set_ylabel("feed load (kW)\n(dotted: capacity)")
    ax.legend(loc="upper right", fontsize=8, ncol=4)
    marks = _event_marks(result)[:MAX_EVENT_LABELS]
    lines = []
    last_x = -1e9
    for i, (t, text) in enumerate(marks, start=1):
        for a in axes:
            a.axvline(t / 60.0, color="grey", lw=0.6, alpha=0.5)
        level = 0.97 if t / 60.0 - last_x > 0.02 * max(float(t_min[-1]), 1.0) else 0.86
        last_x = t / 60.0
        ax.annotate(
            str(i),
            (t / 60.0, level),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            ha="center",
            va="top",
            color="black",
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "grey", "lw": 0.5},
        )
        lines.append(f"{i:>2}  {t / 60.0:6.1f} min  {text}")
    text_ax.text(
        0.0,
        1.0,
        "events\n\n" + "\n".join(lines),
        va="top",
        ha="left",
        family="monospace",
        fontsize=7.5 if len(lines) <= 40 else 5.8,
        transform=text_ax.transAxes,
    )
    ax.set_title(f"{result.scenario} (seed {result.seed})")
    ax = axes[1]
    for k, uid in enumerate(result.ups_ids):
        ax.plot(t_min, tl["ups_load_w"][:, k] / 1000.0, lw=1.0, label=uid)
    ax.set_ylabel("UPS output (kW)")
    ax.legend(loc="upper right", fontsize=8, ncol=4)
    ax = axes[2]
    for k, uid in enumerate(result.ups_ids):
        ax.plot(t_min, 100.0 * tl["battery_charge_frac"][:, k], lw=1.0, label=uid)
    ax.plot(t_min, 100.0 * tl["critical_up_frac"], color="black", lw=1.4, ls="--", label="critical services up")
    ax.set_ylabel("battery charge /\ncritical up (%)")
    ax.set_ylim(-3, 103)
    ax.legend(loc="lower left", fontsize=8, ncol=5)
    ax = axes[3]
    ax.plot(t_min, tl["inlet_max_c"], color="tab:red", lw=1.2, label="hottest rack inlet")
    ax.plot(t_min, tl["inlet_mean_c"], color="tab:orange", lw=1.0, label="mean rack inlet")
    ax2 = ax.twinx()
    ax2.plot(t_min, tl["it_power_w"] / 1000.0, color="tab:blue", lw=0.8, alpha=0.7, label="IT power")
    ax2.set_ylabel("IT power (kW)", color="tab:blue")
    ax.set_ylabel("inlet (°C)")
    ax.set_xlabel("time (min)")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_xlim(float(np.min(t_min)), float(np.max(t_min)))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
