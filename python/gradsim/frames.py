"""Traces as pandas DataFrames, with the swept axis values as columns named by their paths."""
import math

import pandas as pd

from . import gradsim_pb2
from .traces import Traces


def _range_value(r, j):
    t = j / (r.count - 1) if r.count > 1 else 0.0
    v = (math.exp(math.log(r.start) + t * (math.log(r.stop) - math.log(r.start))) if r.log
         else r.start + t * (r.stop - r.start))
    return float(round(v)) if r.integer else v


def _axis_values(axis):
    if len(axis.texts):
        return list(axis.texts)
    if axis.HasField("range"):
        return [_range_value(axis.range, j) for j in range(axis.range.count)]
    return list(axis.numbers)


def _dimensions(sweep):
    """The grid's dimensions, as gradsim expands them: zipped axes move together, the last
    dimension varies fastest, replicas fastest of all."""
    dims, zip_dim = [], {}
    for k, a in enumerate(sweep.axis):
        n = len(_axis_values(a))
        if a.zip and a.zip in zip_dim:
            dims[zip_dim[a.zip]][0].append(k)
            continue
        if a.zip:
            zip_dim[a.zip] = len(dims)
        dims.append(([k], n))
    return dims


def configuration_of(sweep, index):
    """{axis path: value} of simulation `index` of a sweep (a SweepSpec), and its replica."""
    replicas = max(1, sweep.replicas)
    replica, rest = index % replicas, index // replicas
    values = [None] * len(sweep.axis)
    for axes, n in reversed(_dimensions(sweep)):
        for k in axes:
            values[k] = _axis_values(sweep.axis[k])[rest % n]
        rest //= n
    return {a.path: v for a, v in zip(sweep.axis, values)}, replica


def _stats(prefix, s):
    return {f"{prefix}_norm": s.norm, f"{prefix}_mean": s.mean, f"{prefix}_variance": s.variance,
            f"{prefix}_zero_fraction": s.zero_fraction, f"{prefix}_nonfinite": s.nan + s.pos_inf + s.neg_inf,
            f"{prefix}_subnormal": s.subnormal, f"{prefix}_max_abs": s.max_abs}


_THEORY = ("predicted_q", "predicted_output_sq", "predicted_grad_norm", "pair_correlation", "predicted_correlation")


def layers_frame(path):
    """One row per simulation x layer: index, replica, seed, one column per swept axis (named
    by its path), status, layer, and the layer's numbers (grad_norm, act_grad_norm,
    weight_grad_norm, bias_grad_norm, pre_activation_sq = the measured length q, and
    output_*/grad_*/act_grad_* statistics), with mean-field theory's predicted_q,
    predicted_output_sq, predicted_grad_norm, and with correlated input pairs pair_correlation
    and predicted_correlation (NaN where the trace has none), in a transformer rank_collapse and
    one column per measure a layer reports (attention_entropy; NaN in blocks without it).
    Records written with detail NORMS have NaN statistics; SUMMARY records have no layers
    (sims_frame has their numbers)."""
    rows = []
    with Traces(path) as tr:
        sweep = tr.header.spec
        for t in tr:
            axes, replica = configuration_of(sweep, t.index)
            base = {"index": t.index, "replica": replica, "seed": t.spec.seed, **axes,
                    "status": "ok" if t.status == 1 else "failed"}
            for l in t.layers:
                row = dict(base, layer=l.index, grad_norm=l.grad_norm, act_grad_norm=l.act_grad_norm,
                           weight_grad_norm=l.weight_grad_norm, bias_grad_norm=l.bias_grad_norm,
                           pre_activation_sq=l.pre_activation_sq)
                row.update({k: getattr(l, k) if l.HasField(k) else math.nan for k in _THEORY})
                if l.HasField("rank_collapse"):
                    row["rank_collapse"] = l.rank_collapse
                for m in l.measures:
                    row[m.name] = m.value
                for prefix in ("output", "grad", "act_grad"):
                    stats = _stats(prefix, getattr(l, prefix))
                    if not l.HasField(prefix):  # detail NORMS: not recorded (grad_norm is the layer's own)
                        stats = {k: math.nan for k in stats if k not in row}
                    row.update(stats)
                rows.append(row)
    return pd.DataFrame(rows)


def _log_ratio(t):
    if t.layers:
        first, last = t.layers[0].grad_norm, t.layers[-1].grad_norm
    elif t.spec.detail == gradsim_pb2.SUMMARY:  # no layers: the record's own two norms
        first, last = t.first_grad_norm, t.last_grad_norm
    else:
        return float("nan")
    with_inf = float("inf")
    if last == 0:
        return with_inf if first > 0 else float("nan")
    if first == 0:
        return -with_inf
    try:
        return math.log10(first / last)
    except (ValueError, ZeroDivisionError):
        return float("nan")


def verdict(log_ratio, band=1.0):
    """gradsim's verdict on one log10(first/last): vanishing, exploding, stable, non-finite."""
    if not math.isfinite(log_ratio):
        return "non-finite"
    return "vanishing" if log_ratio < -band else "exploding" if log_ratio > band else "stable"


def sims_frame(path, band=1.0):
    """One row per simulation: index, replica, seed, the axis columns, status, message, depth,
    loss, log10_first_over_last (of |dL/dh|), verdict (with `band`, as `gradsim summary
    --stable-band`), the blocks where the gradient overflowed or underflowed and where the
    forward output overflowed (NaN when it did not), and mean-field theory's
    predicted_log10_first_over_last with its finite-width predicted_log10_spread (NaN where
    theory has none; no_prediction says why), theory's correlation depth scale xi_c (plain
    stacks; NaN otherwise), with `jacobian` the median over its samples of the Jacobian's log10
    spread and fraction of singular values near 1 (NaN without), and with a training task the
    last evaluation's score and held-out loss over the first's (NaN without) and train_verdict
    ("trained", "did_not_train", "diverged"; "" without a task)."""
    rows = []
    with Traces(path) as tr:
        sweep = tr.header.spec
        for t in tr:
            axes, replica = configuration_of(sweep, t.index)
            r = _log_ratio(t) if t.status == 1 else float("nan")
            rows.append({"index": t.index, "replica": replica, "seed": t.spec.seed, **axes,
                         "status": "ok" if t.status == 1 else "failed", "message": t.message,
                         "depth": len(t.layers) or t.spec.network.depth, "loss": t.loss, "log10_first_over_last": r,
                         "verdict": verdict(r, band) if t.status == 1 else "failed",
                         "grad_overflow_layer": t.grad_overflow_layer if t.HasField("grad_overflow_layer") else math.nan,
                         "grad_underflow_layer": t.grad_underflow_layer if t.HasField("grad_underflow_layer") else math.nan,
                         "forward_overflow_layer": t.forward_overflow_layer if t.HasField("forward_overflow_layer") else math.nan,
                         "steps": len(t.steps),
                         "predicted_log10_first_over_last": t.prediction.log10_first_over_last
                         if t.status == 1 and not t.prediction.none else math.nan,
                         "predicted_log10_spread": t.prediction.log10_spread
                         if t.status == 1 and not t.prediction.none else math.nan,
                         "no_prediction": t.prediction.none,
                         "jacobian_log10_spread": _median([sp.log10_spread for sp in t.jacobian]),
                         "jacobian_near_one": _median([sp.near_one for sp in t.jacobian]),
                         "xi_c": t.prediction.xi_c if t.prediction.HasField("xi_c") else math.nan,
                         "score": t.evaluations[-1].score if t.evaluations else math.nan,
                         "test_loss_ratio": t.evaluations[-1].test_loss / t.evaluations[0].test_loss
                         if t.evaluations else math.nan,
                         "train_verdict": _TRAIN_VERDICTS.get(t.verdict, "")})
    return pd.DataFrame(rows)


_TRAIN_VERDICTS = {gradsim_pb2.TRAINED: "trained", gradsim_pb2.DID_NOT_TRAIN: "did_not_train",
                   gradsim_pb2.DIVERGED: "diverged"}


def evaluations_frame(path):
    """One row per held-out evaluation of a training task: index, replica, the axis columns,
    step, lr, train_loss, test_loss, score (test loss / the trivial predictor's), train_accuracy
    and test_accuracy (NaN for TEACHER), nonfinite, skipped, and per-block lists grad_norm and
    update_ratio (empty at step 0 and at detail SUMMARY)."""
    rows = []
    with Traces(path) as tr:
        sweep = tr.header.spec
        for t in tr:
            axes, replica = configuration_of(sweep, t.index)
            for e in t.evaluations:
                rows.append({"index": t.index, "replica": replica, **axes, "step": e.step, "lr": e.lr,
                             "train_loss": e.train_loss, "test_loss": e.test_loss, "score": e.score,
                             "train_accuracy": e.train_accuracy if e.HasField("train_accuracy") else math.nan,
                             "test_accuracy": e.test_accuracy if e.HasField("test_accuracy") else math.nan,
                             "nonfinite": e.nonfinite, "skipped": e.skipped, "grad_norm": list(e.grad_norm),
                             "update_ratio": list(e.update_ratio)})
    return pd.DataFrame(rows)


def _median(values):
    v = sorted(x for x in values if not math.isnan(x))  # NaN: a spectrum that overflowed, or unknown
    if not v:
        return math.nan
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


_QUANTILES = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)  # Spectrum.quantiles' probabilities


def spectra_frame(path):
    """One row per Jacobian spectrum (`jacobian { samples }` in the spec): index, replica, the
    axis columns, layer (-1: the whole network dy/dx; i: the partial product up to block i,
    with per_block), sample (the input row), count, zeros, max, min (smallest non-zero),
    mean_sq, mean_4, log10_spread, condition, near_one, q01 ... q99, and values (a list,
    largest first; empty above jacobian.max_values)."""
    rows = []
    with Traces(path) as tr:
        sweep = tr.header.spec
        for t in tr:
            axes, replica = configuration_of(sweep, t.index)
            spectra = [(-1, sp) for sp in t.jacobian] + [(l.index, sp) for l in t.layers for sp in l.jacobian]
            for layer, sp in spectra:
                row = {"index": t.index, "replica": replica, **axes, "layer": layer, "sample": sp.sample,
                       "count": sp.count, "zeros": sp.zeros, "max": sp.max, "min": sp.min, "mean_sq": sp.mean_sq,
                       "mean_4": sp.mean_4, "log10_spread": sp.log10_spread, "condition": sp.condition,
                       "near_one": sp.near_one, "values": list(sp.values)}
                for p, q in zip(_QUANTILES, sp.quantiles):
                    row[f"q{round(p * 100):02d}"] = q
                rows.append(row)
    return pd.DataFrame(rows)
