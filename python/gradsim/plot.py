"""The figures people look at first, from a traces file (matplotlib, Agg backend):

  signal      |dL/dh| per layer (log scale) per configuration, the median over replicas with
              their range shaded; the forward activation variance beside it
  phase       for a sweep over two numeric axes: a heatmap of the median log10(|dL/dh| first /
              last), cells where the gradient overflowed (x) or underflowed (o) marked
  formats     where the sweep has a dtype axis: the block (counted from the output) at which
              each configuration's gradient overflowed or underflowed, per format
  training    where simulations took training steps: loss and parameter-gradient norm per step
  trainability  for a training task swept over network.depth and another numeric axis: each
              cell's held-out score (median over replicas; trained cells outlined) against
              depth, with mean-field theory's 6 xi_c where it has it (Schoenholz et al. 2017)
  spectra     where simulations computed Jacobian spectra (`jacobian`): the singular values of
              dy/dx (1 % to 99 % shaded, median, largest and smallest) and the fraction within
              a factor 10 of 1, against depth (or, with per_block, against the block)

    python3 -m gradsim.plot traces.pb -o figures/      (or: gradsim plot traces.pb -o figures/)

Colours are the Okabe-Ito palette (distinguishable with the common colour-vision deficiencies);
the heatmap uses the PuOr diverging map centred on 0.
"""
import argparse
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from .frames import configuration_of, layers_frame, sims_frame, spectra_frame  # noqa: E402
from .traces import Traces  # noqa: E402

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]


def _axes_of(path):
    with Traces(path) as tr:
        return [a.path for a in tr.header.spec.axis], tr.header


def _short(path):
    """'network.activation.name' -> 'activation', 'init.params.gain' -> 'gain'."""
    parts = [p for p in path.split(".") if p not in ("params", "name", "network")]
    return parts[-1] if parts else path


def _value(v):
    return f"{v:.4g}" if isinstance(v, float) else (v if v != "" else "(off)")


def _config_label(row, axes):
    return ", ".join(f"{_short(a)}={_value(row[a])}" for a in axes) or "base spec"


def _recurrent(header):
    return bool(header.spec.base.network.recurrent.cell.name) or any(
        a.path.startswith("network.recurrent.cell") for a in header.spec.axis)


def _title(header, what):
    """What was simulated: the spec, and the base spec's shape where no axis sweeps it."""
    spec = header.spec.base
    net = spec.network
    swept = {a.path for a in header.spec.axis}
    steps = "time steps" if _recurrent(header) else "depth"  # a recurrent network's blocks are its steps
    bits = [f"{steps} {net.depth}" if net.depth and "network.depth" not in swept else "",
            f"width {net.width}" if net.width and "network.width" not in swept else "",
            f"batch {spec.batch}" if spec.batch and "batch" not in swept else "",
            f"{max(1, header.spec.replicas)} replica{'s' if header.spec.replicas > 1 else ''} each"]
    return f"{what}\n{os.path.basename(header.spec_source)}: " + ", ".join(b for b in bits if b)


def signal_figure(path):
    """|dL/dh| and the activation variance by layer; one line per configuration."""
    axes, header = _axes_of(path)
    df = layers_frame(path)
    if df.empty:  # detail SUMMARY (or nothing but failures): no per-layer numbers to draw
        return None, {}
    df = df[df.status == "ok"]
    fig, (ax_g, ax_v) = plt.subplots(1, 2, figsize=(12, 5))
    groups = list(df.groupby(axes[0] if len(axes) == 1 else axes, sort=False)) if axes else [((), df)]
    lines, theory = 0, False
    for i, (key, g) in enumerate(groups):
        colour = OKABE_ITO[i % len(OKABE_ITO)]
        style = ["-", "--", ":", "-."][(i // len(OKABE_ITO)) % 4]
        label = _config_label(g.iloc[0], axes)
        by_layer = g.groupby("layer")
        for ax, column in ((ax_g, "grad_norm"), (ax_v, "output_variance")):
            if df[column].isna().all():
                continue
            # log10 on a linear axis: these values span hundreds of decades (up to the formats'
            # limits), beyond what a log-scaled axis can lay out.
            values = by_layer[column]
            med, lo, hi = values.median(), values.min(), values.max()
            ok = np.isfinite(med.values) & (med.values > 0)
            ax.plot(med.index[ok], np.log10(med.values[ok]), style, color=colour, label=label, lw=1.6)
            if g.replica.nunique() > 1:
                band = ok & (lo.values > 0) & np.isfinite(hi.values)
                ax.fill_between(med.index[band], np.log10(lo.values[band]), np.log10(hi.values[band]),
                                color=colour, alpha=0.15, lw=0)
            if column == "grad_norm" and g.predicted_grad_norm.notna().any():  # theory beside it
                pred = by_layer["predicted_grad_norm"].median()
                ok = np.isfinite(pred.values) & (pred.values > 0)
                ax.plot(pred.index[ok], np.log10(pred.values[ok]), ":", color="black", lw=1.0)
                theory = True
        lines += 1
    if theory:  # one legend entry for all of theory's lines, after the configurations
        ax_g.plot([], [], ":", color="black", lw=1.0, label="mean-field theory")
    for ax, column in ((ax_g, "grad_norm"), (ax_v, "output_variance")):
        if not ax.lines:
            ax.set_xticks([]), ax.set_yticks([])
            why = ("not recorded\n(traces written with detail NORMS)" if df[column].isna().all()
                   else "no finite values to show\n(the numbers left the format)")
            ax.text(0.5, 0.5, why, transform=ax.transAxes, ha="center", va="center", color="gray")
    if _recurrent(header):  # blocks are time steps; the last one's output is what the loss reads
        ax_g.set_xlabel("time step t (the loss reads the last; the gradient flows back through time)")
        ax_g.set_ylabel("log10 ‖dL/ds_t‖ (median over replicas, range shaded)")
        ax_g.set_title("backward: gradient norm by time step")
        ax_v.set_xlabel("time step t")
        ax_v.set_ylabel("log10 variance of the state s_t")
        ax_v.set_title("forward: state variance by time step")
    else:
        ax_g.set_xlabel("layer (0: next to the input; the gradient flows from the last)")
        ax_g.set_ylabel("log10 ‖dL/dh‖ (median over replicas, range shaded)")
        ax_g.set_title("backward: gradient norm by layer")
        ax_v.set_xlabel("layer")
        ax_v.set_ylabel("log10 variance of the block's output")
        ax_v.set_title("forward: activation variance by layer")
    for ax in (ax_g, ax_v):
        ax.grid(True, which="major", alpha=0.3)
    fig.suptitle(_title(header, "Signal propagation"), fontsize=11)
    if lines > 8:  # a legend below both panels, out of the data's way
        fig.legend(*ax_g.get_legend_handles_labels(), loc="lower center", ncol=min(5, (lines + 3) // 4), fontsize=8)
        fig.tight_layout(rect=(0, 0.04 + 0.035 * math.ceil(lines / min(5, (lines + 3) // 4)), 1, 1))
    else:
        ax_g.legend(fontsize=8, loc="best")
        fig.tight_layout()
    return fig, {"lines": lines}


def _numeric_axes(sims, axes):
    return [a for a in axes if sims[a].map(lambda v: isinstance(v, (int, float))).all() and sims[a].nunique() > 1]


def phase_figure(path):
    """Heatmap over the first two numeric swept axes (other axes: their first value)."""
    axes, header = _axes_of(path)
    sims = sims_frame(path)
    numeric = _numeric_axes(sims, axes)
    zip_of = {a.path: (a.zip or a.path) for a in header.spec.axis}  # zipped axes move together
    if not numeric:
        return None, {"reason": "needs two numeric axes"}
    x_axis = numeric[-1]
    candidates = [a for a in numeric[:-1] if zip_of[a] != zip_of[x_axis]]
    if not candidates:
        return None, {"reason": "needs two numeric axes that are not zipped together"}
    y_axis = candidates[-1]
    for a in axes:  # hold the other axes at their first value (those zipped to x or y move with them)
        if zip_of[a] not in (zip_of[x_axis], zip_of[y_axis]):
            sims = sims[sims[a] == sims[a].iloc[0]]
    xs, ys = sorted(sims[x_axis].unique()), sorted(sims[y_axis].unique())
    grid = np.full((len(ys), len(xs)), np.nan)
    theory = np.full_like(grid, np.nan)  # mean-field theory's log-ratio, where it has one
    marks = []
    for (yv, xv), g in sims.groupby([y_axis, x_axis]):
        i, j = ys.index(yv), xs.index(xv)
        finite = g.log10_first_over_last[np.isfinite(g.log10_first_over_last)]
        if len(finite) * 2 > len(g):
            grid[i, j] = finite.median()
        if g.predicted_log10_first_over_last.notna().all():
            theory[i, j] = g.predicted_log10_first_over_last.median()
        if g.grad_overflow_layer.notna().any():
            marks.append((j, i, "x"))
        elif g.grad_underflow_layer.notna().any():
            marks.append((j, i, "o"))
    fig, ax = plt.subplots(figsize=(7, 5.5))
    limit = max(1.0, np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
    image = ax.imshow(grid, origin="lower", cmap="PuOr_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(len(xs)), [f"{v:.3g}" for v in xs], rotation=45 if len(xs) > 8 else 0)
    ax.set_yticks(range(len(ys)), [f"{v:.3g}" for v in ys])
    ax.set_xlabel(x_axis)
    ax.set_ylabel(y_axis)
    for i in range(len(ys)):
        for j in range(len(xs)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:+.1f}", ha="center", va="center", fontsize=8,
                        color="white" if abs(grid[i, j]) > 0.6 * limit else "black")
    for j, i, m in marks:
        ax.plot(j, i, m, color="black", ms=14, mew=2, mfc="none")
    crossings = 0  # where theory's log-ratio changes sign between neighbouring cells of a row
    for i in range(len(ys)):
        for j in range(len(xs) - 1):
            a, b = theory[i, j], theory[i, j + 1]
            if np.isfinite(a) and np.isfinite(b) and (a > 0) != (b > 0):
                ax.plot([j + 0.5, j + 0.5], [i - 0.5, i + 0.5], color="black", lw=2.5, ls="--")
                crossings += 1
    cb = fig.colorbar(image, ax=ax)
    cb.set_label("log10(‖dL/dh‖ first / last): < 0 vanishing, > 0 exploding")
    held = [a for a in axes if zip_of[a] not in (zip_of[x_axis], zip_of[y_axis])]
    what = "Phase diagram (x: gradient overflowed, o: underflowed, blank: non-finite"
    what += ")\ndashed: where mean-field theory's log-ratio changes sign" if crossings else ")"
    ax.set_title(_title(header, what)
                 + (f"\nother axes at: {', '.join(f'{_short(a)}={sims[a].iloc[0]}' for a in held)}" if held else ""),
                 fontsize=9)
    fig.tight_layout()
    return fig, {"cells": int(np.isfinite(grid).sum()), "marked": len(marks), "shape": grid.shape,
                 "theory_crossings": crossings}


def formats_figure(path):
    """For a dtype axis: the block, counted from the output, where the gradient left the format."""
    axes, header = _axes_of(path)
    if "dtype" not in axes:
        return None, {"reason": "no dtype axis"}
    sims = sims_frame(path)
    others = [a for a in axes if a != "dtype"]
    fig, ax = plt.subplots(figsize=(8, 4.8))
    formats = list(dict.fromkeys(sims.dtype))
    configs = list(sims.groupby(others[0] if len(others) == 1 else others, sort=False)) if others else [((), sims)]
    width = 0.8 / max(1, len(configs))
    bars = 0
    for c, (key, g) in enumerate(configs):
        for kind, column, hatch in (("overflow", "grad_overflow_layer", ""), ("underflow", "grad_underflow_layer", "//")):
            heights = []
            for f in formats:
                layers = g[g.dtype == f][column].dropna()
                depth = g[g.dtype == f].depth.max()
                heights.append(depth - layers.median() if len(layers) else 0)
            if not any(heights):
                continue
            xs = np.arange(len(formats)) + c * width
            ax.bar(xs, heights, width, color=OKABE_ITO[c % len(OKABE_ITO)], hatch=hatch, edgecolor="black",
                   label=f"{_config_label(g.iloc[0], others)}: {kind}")
            bars += sum(1 for h in heights if h)
    ax.set_xticks(np.arange(len(formats)) + 0.4 - width / 2, [str(f) for f in formats])
    ax.set_ylabel("blocks from the output until the gradient\noverflowed / became 0 (none: bar absent)")
    ax.set_title(_title(header, "Where each number format lost the gradient"), fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig, {"bars": bars}


def training_figure(path):
    """Loss and parameter-gradient norm per step, one line per simulation (first 8)."""
    axes, header = _axes_of(path)
    runs = []
    with Traces(path) as tr:
        for t in tr:
            if t.steps:
                runs.append((configuration_of(tr.header.spec, t.index)[0], t))
            if len(runs) == 8:
                break
    if not runs:
        return None, {"reason": "no training steps"}
    fig, (ax_l, ax_g) = plt.subplots(1, 2, figsize=(12, 4.8))
    for i, (config, t) in enumerate(runs):
        steps = [s.step for s in t.steps]
        label = ", ".join(f"{_short(a)}={_value(v)}" for a, v in config.items()) or f"sim {t.index}"
        colour = OKABE_ITO[i % len(OKABE_ITO)]
        for ax, values in ((ax_l, [s.loss for s in t.steps]), (ax_g, [s.param_grad_norm for s in t.steps])):
            v = np.array(values, dtype=float)
            ok = np.isfinite(v) & (v > 0)  # a diverged run stops where its numbers do
            ax.plot(np.array(steps)[ok], np.log10(v[ok]), color=colour, label=label, marker="." if ok.sum() < 3 else None)
    for ax, what in ((ax_l, "log10 loss"), (ax_g, "log10 ‖dL/dθ‖ as the optimiser sees it")):
        ax.set_xlabel("training step")
        ax.set_ylabel(what)
        ax.grid(True, alpha=0.3)
    ax_l.legend(fontsize=8)
    fig.suptitle(_title(header, "Training"), fontsize=11)
    fig.tight_layout()
    return fig, {"lines": len(runs)}


def spectra_figure(path):
    """Jacobian singular values against depth (a network.depth axis) or against the block (with
    per_block); one colour per configuration, medians over samples and replicas."""
    axes, header = _axes_of(path)
    sp = spectra_frame(path)
    if sp.empty:
        return None, {"reason": "no Jacobian spectra"}
    if (sp.layer >= 0).any():
        sp, x, others, xlabel = sp[sp.layer >= 0], "layer", axes, "block (the product from the input up to its output)"
    elif "network.depth" in axes and sp["network.depth"].nunique() > 1:
        sp, x, xlabel = sp[sp.layer < 0], "network.depth", "depth (blocks)"
        others = [a for a in axes if a != x]
    else:
        return None, {"reason": "needs a network.depth axis or per_block spectra"}
    fig, (ax_s, ax_n) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [3, 2]})
    groups = list(sp.groupby(others[0] if len(others) == 1 else others, sort=False)) if others else [((), sp)]
    log = lambda v: np.log10(np.where(v > 0, v, np.nan))  # noqa: E731
    for i, (key, g) in enumerate(groups):
        colour = OKABE_ITO[i % len(OKABE_ITO)]
        label = _config_label(g.iloc[0], others)
        med = g.groupby(x)[["max", "min", "near_one"] + [c for c in ("q01", "q50", "q99") if c in g]].median()
        xs = med.index.values
        if "q01" in med and med.q01.notna().any():
            ax_s.fill_between(xs, log(med.q01.values), log(med.q99.values), color=colour, alpha=0.18, lw=0)
            zero = " (median 0: most exactly 0)" if (med.q50.values <= 0).all() else ""
            ax_s.plot(xs, log(med.q50.values), "-", color=colour, lw=1.8, label=label + zero)
        else:
            ax_s.plot([], [], "-", color=colour, lw=1.8, label=label + " (estimate: extremes only)")
        ax_s.plot(xs, log(med["max"].values), "--", color=colour, lw=1)
        ax_s.plot(xs, log(med["min"].values), ":", color=colour, lw=1)
        if med.near_one.notna().any():
            ax_n.plot(xs, med.near_one.values, "o-", color=colour, lw=1.6, ms=4, label=label)
    ax_s.plot([], [], "--", color="gray", lw=1, label="largest")
    ax_s.plot([], [], ":", color="gray", lw=1, label="smallest non-zero")
    ax_s.axhline(0, color="black", lw=0.6)
    ax_s.set_xlabel(xlabel)
    ax_s.set_ylabel("log10 singular value of dy/dx\n(median; 1 % to 99 % shaded)")
    ax_s.set_title("Jacobian singular values")
    ax_n.set_xlabel(xlabel)
    ax_n.set_ylabel("fraction within a factor 10 of 1")
    ax_n.set_ylim(-0.02, 1.02)
    ax_n.set_title("how many stay near 1 (isometry)")
    for ax in (ax_s, ax_n):
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        if x == "network.depth" and sp[x].min() > 0 and sp[x].max() / sp[x].min() >= 8:
            ax.set_xscale("log", base=2)
    handles, labels = ax_s.get_legend_handles_labels()  # below both panels, out of the data's way
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8)
    fig.suptitle(_title(header, "Input-output Jacobian spectra"), fontsize=11)
    fig.tight_layout(rect=(0, 0.035 * math.ceil(len(labels) / 2) + 0.02, 1, 1))
    return fig, {"lines": len(groups)}


def trainability_figure(path):
    """Held-out score over depth x another numeric axis, trained cells outlined, 6 xi_c drawn."""
    axes, header = _axes_of(path)
    sims = sims_frame(path)
    if sims.score.isna().all():
        return None, {"reason": "no training task"}
    numeric = [a for a in _numeric_axes(sims, axes) if a != "network.depth"]
    if "network.depth" not in axes or sims["network.depth"].nunique() < 2 or not numeric:
        return None, {"reason": "needs a network.depth axis and another numeric axis"}
    x_axis = numeric[-1]
    zip_of = {a.path: (a.zip or a.path) for a in header.spec.axis}
    for a in axes:
        if zip_of[a] not in (zip_of[x_axis], zip_of["network.depth"]):
            sims = sims[sims[a] == sims[a].iloc[0]]
    cells = sims.groupby([x_axis, "network.depth"]).agg(
        score=("score", "median"), trained=("train_verdict", lambda v: (v == "trained").mean() > 0.5),
        diverged=("train_verdict", lambda v: (v == "diverged").mean() > 0.5)).reset_index()
    gain = x_axis == "init.params.gain"  # shown as sigma_w2 = gain^2, theory's variable
    xs = cells[x_axis] ** 2 if gain else cells[x_axis]
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    score = np.clip(cells.score.fillna(np.inf).values, 0, 1.2)
    points = ax.scatter(xs, cells["network.depth"], c=score, cmap="viridis", vmin=0, vmax=1.2, s=380, marker="s",
                        edgecolors=np.where(cells.trained, "black", "none"), linewidths=2.5)
    for x, d, s, dv in zip(xs, cells["network.depth"], cells.score, cells.diverged):
        ax.text(x, d, "NaN" if dv else f"{s:.2f}", ha="center", va="center", fontsize=7,
                color="white" if not dv and s < 0.6 else "black")
    ax.set_yscale("log")
    depths = sorted(cells["network.depth"].unique())
    ax.set_yticks(depths, [str(int(d)) for d in depths])
    ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    xi = sims.groupby(x_axis).xi_c.median()
    drawn = xi.notna().any()
    if drawn:
        order = np.argsort(xi.index.values)
        xv = (xi.index.values ** 2 if gain else xi.index.values)[order]
        bound = np.minimum(6 * xi.values[order], 10 * max(depths))  # inf at the edge of chaos
        ax.plot(xv, bound, "--", color="#D55E00", lw=2, label="6 ξ_c (mean-field theory)")
        ax.set_ylim(min(depths) / 1.5, max(depths) * 1.6)
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("σ_w² (init gain²)" if gain else x_axis)
    ax.set_ylabel("depth (blocks)")
    cb = fig.colorbar(points, ax=ax)
    cb.set_label("held-out loss / trivial predictor's (last evaluation)")
    below = header.spec.base.train.trained_below or 0.5
    ax.set_title(_title(header, f"Does it train? outlined: trained (score <= {below:g})"), fontsize=9)
    fig.tight_layout()
    return fig, {"cells": len(cells), "trained": int(cells.trained.sum()), "theory": bool(drawn)}


FIGURES = {"signal": signal_figure, "phase": phase_figure, "formats": formats_figure, "training": training_figure,
           "trainability": trainability_figure, "spectra": spectra_figure}


def all_figures(path, out_dir, formats=("png", "svg")):
    """Writes every figure that applies to the traces; returns [(name, files, info)]."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name, make in FIGURES.items():
        fig, info = make(path)
        if fig is None:
            continue
        files = []
        for ext in formats:
            f = os.path.join(out_dir, f"{name}.{ext}")
            fig.savefig(f, dpi=120)
            files.append(f)
        plt.close(fig)
        written.append((name, files, info))
    return written


def main(argv=None):
    p = argparse.ArgumentParser(prog="gradsim plot", description="Write the figures of a gradsim traces file.")
    p.add_argument("traces", help="traces file written by `gradsim run`")
    p.add_argument("-o", "--output", default="figures", help="directory for the figures (default: figures)")
    p.add_argument("--format", action="append", choices=["png", "svg", "pdf"], help="file formats (default: png and svg)")
    a = p.parse_args(argv)
    try:
        written = all_figures(a.traces, a.output, tuple(a.format or ["png", "svg"]))
    except (OSError, ValueError) as e:
        print(f"gradsim: error: {e}", file=sys.stderr)
        return 1
    for name, files, _ in written:
        print(f"wrote {name}: {' '.join(files)}")
    if not written:
        print("gradsim: no figure applies to these traces", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
