"""Plots of mesh runs: the link-utilization heatmap."""

from __future__ import annotations

from tilelab.pe_models.mesh import PLANES

__all__ = ["link_utilization", "plot_link_heatmap"]

_STEP = {"E": (1, 0), "W": (-1, 0), "S": (0, 1), "N": (0, -1)}


def link_utilization(stats) -> dict:
    """``{plane: {(x, y, port): flits / cycles}}`` for every router-to-router link of a mesh run."""
    out = {plane: {} for plane in PLANES}
    for rec in stats.links:
        if rec["port"] not in _STEP:
            continue
        for plane in PLANES:
            out[plane][rec["x"], rec["y"], rec["port"]] = rec[f"{plane}_flits"] / max(1, stats.cycles)
    return out


def plot_link_heatmap(stats, path, *, title=None) -> None:
    """Draw every directed NoC link of a mesh run coloured by its utilization (flits per cycle), one
    panel per plane; column 0 holds the memory ports, the tiles are columns 1..C."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import cm, colors

    util = link_utilization(stats)
    xs = [rec["x"] for rec in stats.links]
    ys = [rec["y"] for rec in stats.links]
    cols, rows = max(xs) + 1, max(ys) + 1
    norm = colors.Normalize(vmin=0.0, vmax=max(1e-9, max(max(u.values(), default=0) for u in util.values())))
    cmap = matplotlib.colormaps["viridis"]
    fig, axes = plt.subplots(1, len(PLANES), figsize=(4 * len(PLANES), 3.2 * rows / max(1, cols) + 1.5),
                             squeeze=False)
    for ax, plane in zip(axes[0], PLANES, strict=True):
        for y in range(rows):
            for x in range(cols):
                ax.add_patch(plt.Rectangle((x - 0.18, y - 0.18), 0.36, 0.36,
                                           color="0.75" if x == 0 else "0.45", zorder=2))
        for (x, y, port), u in util[plane].items():
            dx, dy = _STEP[port]
            if not (0 <= x + dx < cols and 0 <= y + dy < rows):
                continue
            off = 0.07 if port in ("E", "S") else -0.07       # two directions side by side
            ox, oy = (0, off) if dx else (off, 0)
            ax.annotate("", xy=(x + dx * 0.8 + ox, y + dy * 0.8 + oy), xytext=(x + dx * 0.2 + ox, y + dy * 0.2 + oy),
                        arrowprops=dict(arrowstyle="->", color=cmap(norm(u)), lw=2.5))
        ax.set_xlim(-0.6, cols - 0.4)
        ax.set_ylim(rows - 0.4, -0.6)
        ax.set_aspect("equal")
        ax.set_xticks(range(cols), ["mem"] + [str(c) for c in range(cols - 1)])
        ax.set_yticks(range(rows))
        ax.set_title(f"{plane} plane")
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes[0].tolist(), label="flits / cycle")
    fig.suptitle(title or f"NoC link utilization — {stats.mesh} mesh, {stats.shard} sharding, "
                          f"{stats.weight_load} weights")
    fig.savefig(path, dpi=110)
    plt.close(fig)
