"""Latency against concurrency, one line per target, from bench/.work/results.json.

Run with an interpreter that has matplotlib (bench/.work/litellm-venv): matplotlib is
not a dependency of the project.

    bench/.work/litellm-venv/bin/python bench/plot.py bench/.work/results.json bench/latency.png
"""

from __future__ import annotations

import json
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"direct": "tab:gray", "floor": "tab:blue", "llm-router": "tab:green", "llm-router-redis": "tab:olive",
          "litellm": "tab:red", "portkey": "tab:purple"}
PANELS = (("chat", "p50_ms", "non-streamed chat: p50 latency (ms)"),
          ("chat", "p99_ms", "non-streamed chat: p99 latency (ms)"),
          ("stream", "ttft_p50_ms", "50-chunk stream: time to first token p50 (ms)"))


def series(results: dict[str, Any], kind: str, metric: str) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for target, entry in results["targets"].items():
        points = []
        for name, row in entry.get("scenarios", {}).items():
            if name.startswith(f"{kind}-c") and metric in row:
                points.append((int(name.rsplit("-c", 1)[1]), float(row[metric])))
        if points:
            out[target] = sorted(points)
    return out


def main() -> None:
    with open(sys.argv[1]) as f:
        results = json.load(f)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(15, 4.5))
    for ax, (kind, metric, title) in zip(axes, PANELS, strict=True):
        for target, points in series(results, kind, metric).items():
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", label=target, color=COLORS.get(target))
        ax.set_xscale("log", base=2)
        ticks = sorted({x for points in series(results, kind, metric).values() for x, _ in points})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_yscale("log")
        ax.set_xlabel("concurrent clients")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"llm-router bench, {results['started']} ({results['machine']['cpu']}, gateway on one core)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
