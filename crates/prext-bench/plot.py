#!/usr/bin/env python3
"""Plots create and update throughput against concurrency (prext on each backend, the raw
references and etcd) from prext-bench's results.json.

Usage: plot.py RESULTS_JSON OUTPUT_PNG   (needs matplotlib: pip install matplotlib)
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8") as f:
        doc = json.load(f)
    # Throughput rows only (the per-level CPU rows are in ms).
    rows = [r for r in doc["rows"] if r["concurrency"] is not None and r["unit"] == "objects/s"]
    measures = sorted({r["measure"] for r in rows})
    fig, axes = plt.subplots(1, len(measures), figsize=(6 * len(measures), 4.5), squeeze=False)
    for ax, measure in zip(axes[0], measures):
        for backend in sorted({r["backend"] for r in rows}):
            pts = sorted(
                (r["concurrency"], r["prext"], r["reference"])
                for r in rows
                if r["measure"] == measure and r["backend"] == backend
            )
            xs = [p[0] for p in pts]
            ax.plot(xs, [p[1] for p in pts], marker="o", label=f"prext on {backend}")
            ax.plot(xs, [p[2] for p in pts], marker="x", linestyle="--", label=f"raw {backend}")
        etcd = sorted({(r["concurrency"], r["etcd"]) for r in rows if r["measure"] == measure and r.get("etcd")})
        if etcd:
            ax.plot([p[0] for p in etcd], [p[1] for p in etcd], marker="s", linestyle=":", color="black", label="etcd")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel("objects/s")
        ax.set_title(f"{measure}, {doc['params']['payload']} reports")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main()
