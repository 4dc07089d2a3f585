"""bench/downtime's figures per second of load, and its plot.

per_second() is plain Python (unit-tested without matplotlib); render() draws the raw
data of a run (bench/downtime's .raw.json: ours and the baseline, in each set-up) as one
PNG, ours beside the seed's on the same axes, one set-up under the other: requests sent,
failed requests and p50/p99 latency per second, each action shaded from its start to its
end and each switch of `current` marked.
matplotlib (bench/requirements.txt) is imported only to draw, so the smoke run and the
tests need none.
"""

import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import ROOT, failed, latencies, ms, pct, raw_setups  # noqa: E402

COLUMNS = {"ours": "ours: deploy.yml / rollback.yml",
           "baseline": "baseline: seed switch + circusctl restart"}
SETUPS = {"shared": "all on every core, load in the host",
          "separated": "host, controller + load on their own cores"}
LATENCY = (("p50_ms", "p50 latency", "tab:green"), ("p99_ms", "p99 latency", "tab:orange"))
SWITCH_COLOR = "tab:purple"
ACTION_COLOR = "0.88"


def per_second(records, started, ended):
    """One row per second of load, by the second each request was sent in: requests,
    failed, and p50/p99 latency (ms) of those that got an answer (None when none did)."""
    seconds = [[] for _ in range(max(1, math.ceil(ended - started)))]
    for r in records:
        seconds[min(len(seconds) - 1, max(0, int(r[0] - started)))].append(r)
    rows = []
    for i, reqs in enumerate(seconds):
        lat = latencies(reqs)
        rows.append({"second": i, "requests": len(reqs), "failed": sum(map(failed, reqs)),
                     "p50_ms": ms(pct(lat, 50)), "p99_ms": ms(pct(lat, 99))})
    return rows


def pyplot():
    """matplotlib's pyplot, drawing to files only (Agg), or exit saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("bench: the plot needs matplotlib, bench's own requirement: "
                         f"{ROOT}/.venv/bin/pip install -r {ROOT}/bench/requirements.txt (bench/run does it), "
                         "then run with the .venv's python (make bench puts it first on PATH)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def render(raw, out):
    """Write the PNG of a run's raw data to out: bench/downtime's .raw.json, one set-up
    ({"ours": ..., "baseline": ...}, before the set-ups) or several ({"setups": [...],
    "shared": {"ours": ..., ...}, "separated": {...}}), each set-up's three panels under
    the previous one's."""
    plt = pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    setups = raw_setups(raw)
    labels = [label for label in COLUMNS if any(label in runs for runs in setups.values())]
    # The top panel of each set-up is taller: it carries the names of the actions and the switches.
    fig, axes = plt.subplots(3 * len(setups), len(labels), sharex=True, sharey="row", squeeze=False,
                             height_ratios=(1.4, 1, 1.2) * len(setups),
                             figsize=(8 * len(labels), 11 * len(setups)), layout="constrained")
    first = {}
    for block, (setup, runs) in enumerate(setups.items()):
        top = 3 * block
        for col, label in enumerate(labels):
            sent, fails, latency = axes[top:top + 3, col]
            if label not in runs:
                continue
            data = runs[label]
            first = first or data
            rows = per_second(data["requests"], data["started"], data["ended"])
            x = [r["second"] + 0.5 for r in rows]  # each value drawn across its second
            sent.plot(x, series(rows, "requests"), drawstyle="steps-mid", color="tab:blue")
            fails.plot(x, series(rows, "failed"), drawstyle="steps-mid", color="tab:red")
            for key, _, color in LATENCY:
                latency.plot(x, series(rows, key), color=color)
            latency.set_yscale("log")
            failed_total = sum(r["failed"] for r in rows)
            where = f"{setup} ({SETUPS.get(setup, setup)}): " if len(setups) > 1 else ""
            sent.set_title(f"{where}{COLUMNS[label]}\n{data.get('rate', 0):g} req/s: {len(data['requests'])} requests in"
                           f" {data['ended'] - data['started']:.0f} s, {failed_total} failed", fontsize=11)
            mark(axes[top:top + 3, col], data)
        axes[top, 0].set_ylabel("requests sent / s")
        axes[top + 1, 0].set_ylabel("failed requests / s\n(non-2xx, no answer)")
        axes[top + 2, 0].set_ylabel("latency per second, ms (log)")
        axes[top, 0].set_ylim(bottom=0)
        axes[top + 1, 0].set_ylim(bottom=0, top=max(1.0, axes[top + 1, 0].get_ylim()[1]))
    for ax in axes[-1]:
        ax.set_xlabel("seconds into the load")
    axes[0, 0].set_xlim(left=0)
    for ax in axes.flat:
        ax.grid(True, which="major", alpha=0.3)
    fig.legend(handles=[*(Line2D([], [], color=color, label=name) for _, name, color in LATENCY),
                        Patch(color=ACTION_COLOR, label="an action running (its start to its end)"),
                        Line2D([], [], color=SWITCH_COLOR, ls="--", label="`current` switched (to the version named)")],
               loc="outside lower center", ncols=4, fontsize=9)
    only = next(iter(setups)) if len(setups) == 1 else None
    rates = {runs[label].get("rate", 0) for runs in setups.values() for label in labels if label in runs}
    rate = f"{first.get('rate', 0):g} req/s" if len(rates) == 1 else "each set-up at its rate"
    fig.suptitle(f"bench/downtime: {rate}, GET {first.get('path', '/')}, "
                 "one request per connection, open loop" + (f"; {only}: {SETUPS.get(only, only)}" if only else ""))
    fig.savefig(out, dpi=100)
    plt.close(fig)


def series(rows, key):
    """One figure of per_second()'s rows, None (no answer that second) as a gap in the line."""
    return [math.nan if r[key] is None else r[key] for r in rows]


def mark(axes, data):
    """Shade each action from its start to its end and mark each switch, in every panel
    of a column; name them in the top panel: an action left of its start, from the
    bottom up, a switch right of its line, from the top down (they may be 0.5 s apart)."""
    t0 = data["started"]
    label = {"xycoords": ("data", "axes fraction"), "rotation": 90, "fontsize": 8,
             "bbox": {"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.7}}
    for a in data["actions"]:
        for ax in axes:
            ax.axvspan(a["start"] - t0, a["end"] - t0, color=ACTION_COLOR, zorder=0)
        axes[0].annotate(f"{a['action']} ({a['end'] - a['start']:.0f} s)", (a["start"] - t0, 0.03),
                         ha="right", va="bottom", **label)
    # The watcher's first entry is the state at start; each later one is a switch.
    for t, target in data["switches"][1:]:
        for ax in axes:
            ax.axvline(t - t0, color=SWITCH_COLOR, ls="--", lw=1)
        axes[0].annotate(f"-> {os.path.basename(target) or '(none)'}", (t - t0, 0.88), ha="left", va="top",
                         color=SWITCH_COLOR, **label)
