"""Reports of a model run: per-layer JSON and CSV, a utilization plot and a roofline plot."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from tilelab.net.executor import atomic_write, write_json_atomic

__all__ = ["CSV_FIELDS", "write_reports"]

#: Columns of ``stats.csv``, one row per layer.
CSV_FIELDS = (
    "index", "name", "op", "out", "bit_exact", "cycles", "macs", "mac_utilization", "ext_bytes_read",
    "ext_bytes_written", "noc_flits", "wall_seconds", "run_seconds", "simulated_macs_per_second",
    "clipped_fraction", "estimated_cycles", "estimate_error", "bound",
)


def write_reports(summary: dict, out_dir, *, json_file=None, plots: bool = True) -> dict:
    """Write ``stats.json``, ``stats.csv``, ``utilization.png`` and ``roofline.png`` into ``out_dir``,
    and ``estimate.png`` (predicted vs measured cycles per layer) when the records carry estimates
    (``tilelab run --estimate``, :func:`~tilelab.estimate.model.add_estimates`; the CSV's
    ``estimated_cycles``, ``estimate_error`` and ``bound`` columns are empty otherwise).

    Parameters
    ----------
    summary : dict
        :meth:`~tilelab.net.executor.RunResult.summary` plus the run's identity.
    out_dir : path
    json_file : path, optional
        Also write the JSON there.
    plots : bool
        Write the two PNG files (matplotlib, Agg backend).

    Returns
    -------
    dict
        Kind → written path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "stats.json", "csv": out / "stats.csv", "utilization": out / "utilization.png",
             "roofline": out / "roofline.png"}
    write_json_atomic(paths["json"], summary)
    if json_file is not None:
        write_json_atomic(Path(json_file), summary)
        paths["json_copy"] = Path(json_file)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for record in summary["layers"]:
        writer.writerow({k: ("" if record.get(k) is None else record.get(k)) for k in CSV_FIELDS})
    atomic_write(paths["csv"], lambda f: f.write(text.getvalue().encode()))
    if plots:
        _plot_utilization(summary, paths["utilization"])
        _plot_roofline(summary, paths["roofline"])
        if "estimate" in summary:
            paths["estimate"] = out / "estimate.png"
            _plot_estimate(summary, paths["estimate"])
    else:
        del paths["utilization"], paths["roofline"]
    return paths


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path):
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))


def _plot_utilization(summary, path):
    plt = _figure()
    layers = [r for r in summary["layers"] if r["op"] in ("conv2d", "linear")]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.18 * len(layers) + 2), 4))
    ax.bar(range(len(layers)), [100 * r["mac_utilization"] for r in layers],
           color=["tab:blue" if r["bit_exact"] else "tab:red" for r in layers])
    ax.set_xticks(range(len(layers)), [r["name"] for r in layers], rotation=90, fontsize=6)
    ax.set_ylabel("MAC utilization (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{summary['model']}: MAC utilization per layer (red: not bit-exact)")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _plot_estimate(summary, path):
    plt = _figure()
    layers = [r for r in summary["layers"] if r.get("estimated_cycles") is not None]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(max(6.0, 0.18 * len(layers) + 2), 5.5),
                                      gridspec_kw={"height_ratios": [2, 1]})
    x = range(len(layers))
    top.bar([i - 0.2 for i in x], [r["cycles"] for r in layers], width=0.4, label="measured (RTL)")
    top.bar([i + 0.2 for i in x], [r["estimated_cycles"] for r in layers], width=0.4, label="estimated")
    top.set_yscale("log")
    top.set_ylabel("cycles")
    top.legend(fontsize=8)
    total = summary["estimate"]
    err = 100 * total["error"] if total["error"] is not None else 0.0
    top.set_title(f"{summary['model']}: estimated vs measured cycles per layer (total {err:+.2f} %)")
    bottom.bar(list(x), [100 * r["estimate_error"] for r in layers],
               color=["tab:red" if abs(r["estimate_error"]) > 0.05 else "tab:green" for r in layers])
    bottom.axhline(0, color="k", lw=0.5)
    bottom.set_ylabel("error (%)")
    bottom.set_xticks(list(x), [r["name"] for r in layers], rotation=90, fontsize=6)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _plot_roofline(summary, path):
    plt = _figure()
    hw = summary.get("hardware", {})
    peak = float(hw.get("peak_macs_per_cycle", 1))
    bw = float(hw.get("ext_bytes_per_cycle", 1))
    points = []
    for r in summary["layers"]:
        moved = r["ext_bytes_read"] + r["ext_bytes_written"]
        if r["op"] in ("conv2d", "linear") and r["cycles"] and moved:
            points.append((r["macs"] / moved, r["macs"] / r["cycles"], r["name"]))
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    if points:
        lo = min(p[0] for p in points) / 2
        hi = max(max(p[0] for p in points) * 2, 2 * peak / bw)
        xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
        ax.plot(xs, [min(peak, bw * x) for x in xs], "k-", label=f"roof: {peak:.0f} MAC/cycle, {bw:.0f} B/cycle")
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=14, c="tab:blue", label="layers")
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (MAC per external byte)")
    ax.set_ylabel("achieved MAC per cycle")
    ax.set_title(f"{summary['model']}: roofline of one tile")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
