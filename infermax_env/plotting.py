"""Pictures of a run: the schedule timeline (who runs in which iteration, prefill vs decode vs evicted) and
KV memory over time."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .simulator import Simulator

PREFILL_COLOR, DECODE_COLOR, EVICT_COLOR = "#4C72B0", "#55A868", "#C44E52"


def schedule_figure(sim: "Simulator", max_iterations: int = 400, max_requests: int = 60):
    """A matplotlib Figure: top, one row per request, one bar per iteration it computes in (blue prefill,
    green decode, red mark on eviction); bottom, KV use over time against M. Large runs show their first
    ``max_iterations`` iterations and ``max_requests`` requests."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n_iter = min(sim.num_iterations, max_iterations)
    starts = np.asarray(sim.log.start[:n_iter])
    durations = np.asarray(sim.log.batch_time[:n_iter])
    fig, (ax_sched, ax_mem) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True,
                                           gridspec_kw={"height_ratios": [3, 1]})
    prefill_bars: dict[int, list[tuple[float, float]]] = {}
    decode_bars: dict[int, list[tuple[float, float]]] = {}
    evictions: list[tuple[float, int]] = []
    for k in range(n_iter):
        decision = sim.log.decisions[k]
        evictions += [(starts[k], r) for r in decision.evict_ids.tolist() if r < max_requests]
        for r, is_decode in zip(decision.run_ids.tolist(), sim.log.decode[k].tolist()):
            if r < max_requests:
                (decode_bars if is_decode else prefill_bars).setdefault(r, []).append((starts[k], durations[k]))
    for bars, color in ((prefill_bars, PREFILL_COLOR), (decode_bars, DECODE_COLOR)):
        for r, spans in bars.items():
            ax_sched.broken_barh(spans, (r - 0.4, 0.8), facecolors=color)
    if evictions:
        ex, ey = zip(*evictions)
        ax_sched.scatter(ex, ey, marker="x", color=EVICT_COLOR, zorder=3, label="evicted")
    shown = min(sim.num_requests, max_requests)
    arrivals = sim.arrival[:shown]
    visible = arrivals <= (starts[-1] + durations[-1] if n_iter else 0.0)
    ax_sched.scatter(arrivals[visible], np.flatnonzero(visible), marker="|", color="0.4", label="arrival")
    ax_sched.scatter([], [], marker="s", color=PREFILL_COLOR, label="prefill")
    ax_sched.scatter([], [], marker="s", color=DECODE_COLOR, label="decode")
    ax_sched.set_ylabel("request")
    ax_sched.yaxis.get_major_locator().set_params(integer=True)
    ax_sched.invert_yaxis()
    ax_sched.legend(loc="upper right", fontsize=8)
    ax_sched.set_title(f"schedule: {n_iter} of {sim.num_iterations} iterations, "
                       f"total GPU time {sum(sim.log.batch_time):.3f} s")
    kv = np.asarray(sim.log.kv_blocks[:n_iter]) * sim.config.block_size
    if n_iter:
        ax_mem.step(np.append(starts, starts[-1] + durations[-1]), np.append(kv, kv[-1]), where="post")
    ax_mem.axhline(sim.config.kv_capacity, color="k", linestyle="--", linewidth=1, label="M")
    ax_mem.set_ylabel("KV tokens")
    ax_mem.set_xlabel("time (s)")
    ax_mem.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def save_schedule_plot(sim: "Simulator", path: str | Path, **kwargs) -> Path:
    """Write :func:`schedule_figure` to ``path`` (PNG) and return the path."""
    import matplotlib.pyplot as plt

    fig = schedule_figure(sim, **kwargs)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
