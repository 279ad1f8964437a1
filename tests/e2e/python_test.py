"""The Python package against the binary: traces read back equal `gradsim inspect --json`, the
DataFrames carry the right axis values (zipped axes, replicas) and equal the CSV that
`gradsim export` writes, and every figure is drawn with the lines and cells it should have.
Run by ctest with Debian's python3: python_test.py GRADSIM_BIN SIMS_DIR."""
import csv
import io
import json
import math
import os
import subprocess
import sys
import tempfile

import gradsim
import gradsim.plot

gs, sims = sys.argv[1], sys.argv[2]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(*args, **kw):
    return subprocess.run([gs, *args], check=True, capture_output=True, text=True, **kw).stdout


tmp = tempfile.mkdtemp()

# 1. Records equal inspect --json, which starts with the header.
out = os.path.join(tmp, "d.pb")
run("run", "-q", os.path.join(sims, "default.textproto"), "-o", out)
header, traces = gradsim.read(out)
traces = list(traces)
lines = run("inspect", "--json", out).splitlines()
check(json.loads(lines[0])["header"]["num_sims"] == "4", "inspect --json starts with the header")
check(header.num_sims == 4 and len(traces) == 4, "four simulations read")
for t, line in zip(traces, lines[1:]):
    j = json.loads(line)
    check(int(j["index"]) == t.index, f"index of sim {t.index} (also 0)")
    check([l.grad_norm for l in t.layers] == [l["grad_norm"] for l in j["layers"]], f"grad norms of sim {t.index}")

frame = gradsim.layers_frame(out)
for line in lines[1:]:
    j = json.loads(line)
    rows = frame[frame["index"] == int(j["index"])]
    check(list(rows.grad_norm) == [l["grad_norm"] for l in j["layers"]], f"layers_frame grad_norm of sim {j['index']}")
    check(list(rows.output_variance) == [l["output"]["variance"] for l in j["layers"]],
          f"layers_frame output_variance of sim {j['index']}")

# 2. A cut file reads up to its last complete record; a flipped bit is caught.
with open(out, "rb") as f:
    data = f.read()
cut = os.path.join(tmp, "cut.pb")
with open(cut, "wb") as f:
    f.write(data[:-5])
tr = gradsim.Traces(cut)
check(len(list(tr)) == 3 and tr.truncated, "a cut file gives 3 records and says truncated")
flipped = bytearray(data)
flipped[len(data) // 2] ^= 0x10
with open(cut, "wb") as f:
    f.write(flipped)
try:
    list(gradsim.read(cut)[1])
    check(False, "a flipped bit is caught")
except gradsim.CorruptTraces as e:
    check("checksum mismatch" in str(e), "the flip is reported as a checksum mismatch")

# 3. Axis columns: zipped axes move together, replicas vary fastest; against the label gradsim
# gives each simulation (its axis values) when the spec has none.
spec = os.path.join(tmp, "z.textproto")
with open(spec, "w") as f:
    f.write('seed: 4 replicas: 3\n'
            'base { network { depth: 3 width: 4 } batch: 4 }\n'
            'axis { path: "network.activation.name" texts: ["tanh", "relu"] }\n'
            'axis { path: "network.depth" numbers: [2, 3, 5] zip: "shape" }\n'
            'axis { path: "network.width" numbers: [4, 6, 8] zip: "shape" }\n'
            'axis { path: "init.params.gain" range { start: 0.5 stop: 2 count: 2 log: true } }\n')
zpb = os.path.join(tmp, "z.pb")
run("run", "-q", spec, "-o", zpb)
sims_df = gradsim.sims_frame(zpb)
check(len(sims_df) == 2 * 3 * 2 * 3, "36 simulations")
for _, row in sims_df.iterrows():
    label = dict(kv.split("=") for kv in next(t for t in gradsim.read(zpb)[1] if t.index == row["index"]).spec.label.split())
    check(label["network.activation.name"] == row["network.activation.name"], f"activation of sim {row['index']}")
    check(float(label["network.depth"]) == row["network.depth"], f"depth of sim {row['index']}")
    check(float(label["init.params.gain"]) == round(row["init.params.gain"], 5) or
          abs(float(label["init.params.gain"]) - row["init.params.gain"]) < 1e-5, f"gain of sim {row['index']}")
    check(row["replica"] == row["index"] % 3, f"replica of sim {row['index']}")
check(((sims_df["network.depth"] == 2) == (sims_df["network.width"] == 4)).all(), "zipped axes move together")

# 4. The per-layer frame equals the CSV gradsim export writes (read back exactly).
layers = gradsim.layers_frame(zpb)
exported = list(csv.DictReader(io.StringIO(run("export", zpb, "--csv", "-"))))
check(len(exported) == len(layers), "one CSV row per simulation x layer")
for (_, row), e in zip(layers.iterrows(), exported):
    for column in ("grad_norm", "weight_grad_norm", "output_variance", "output_mean", "pre_activation_sq",
                   "predicted_q", "predicted_grad_norm"):
        check(float(e[column]) == row[column], f"{column} of sim {row['index']} layer {row['layer']} round-trips")
    check(e["network.activation.name"] == row["network.activation.name"], "axis column in the CSV")

# 5. The figures: the right number of lines, cells and bars, and real PNG files.
written = gradsim.plot.all_figures(zpb, os.path.join(tmp, "fig"))
names = [w[0] for w in written]
check(names == ["signal", "phase"], f"signal and phase figures for a two-numeric-axis sweep, got {names}")
fig, info = gradsim.plot.signal_figure(zpb)
check(info["lines"] == 2 * 3 * 2, "one line per configuration (12)")
check(len(fig.axes[0].lines) == 25 and len(fig.axes[1].lines) == 12,
      "12 lines in each panel, theory's dotted line beside each gradient line, and its legend entry")
check(sims_df.predicted_log10_first_over_last.notna().all() and (sims_df.no_prediction == "").all(),
      "theory predicts every simulation of a plain stack")
last = layers[layers.layer == layers.groupby("index").layer.transform("max")]
check((last.predicted_grad_norm == last.grad_norm).all(), "theory's gradient norms are anchored at the last layer")
fig, info = gradsim.plot.phase_figure(zpb)
check(info["shape"] == (3, 2), f"a 3 x 2 heatmap (depth x gain), got {info['shape']}")
check(info["theory_crossings"] == 3, f"theory's sign change marked in each row (tanh, gain 0.5 to 2), got {info}")
for name, files, _ in written:
    with open(files[0], "rb") as f:
        png = f.read()
    check(png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20000, f"{name}.png is a real figure")
    check(os.path.getsize(files[1]) > 10000, f"{name}.svg written")
g = os.path.join(tmp, "g.pb")
run("run", "-q", os.path.join(sims, "gain_chain.textproto"), "-o", g)
fig, info = gradsim.plot.formats_figure(g)
check(fig is not None and info["bars"] == 4, "a bar for each format where the gradient overflowed")
c = os.path.join(tmp, "c.pb")
run("run", "-q", os.path.join(sims, "clipping.textproto"), "-o", c)
fig, info = gradsim.plot.training_figure(c)
check(fig is not None and info["lines"] == 4 and len(fig.axes[0].lines) == 4, "a loss line per training run")
check(gradsim.plot.phase_figure(g)[0] is None, "no phase diagram without two numeric axes")

# 6. Jacobian spectra: one row per spectrum, the whole network's and each block's.
jspec = os.path.join(tmp, "j.textproto")
with open(jspec, "w") as f:
    f.write('base { network { depth: 3 width: 6 activation { name: "relu" } } batch: 4 init { name: "he" }\n'
            '       jacobian { samples: 2 per_block: true } }\n'
            'axis { path: "network.width" numbers: [6, 8] }\n')
jpb = os.path.join(tmp, "j.pb")
run("run", "-q", jspec, "-o", jpb)
spectra = gradsim.spectra_frame(jpb)
check(len(spectra) == 2 * 2 * (1 + 3), f"2 sims x 2 samples x (network + 3 blocks) spectra, got {len(spectra)}")
for t in gradsim.read(jpb)[1]:
    whole = spectra[(spectra["index"] == t.index) & (spectra.layer == -1)]
    check(list(whole.log10_spread) == [sp.log10_spread for sp in t.jacobian], f"spread of sim {t.index}")
    check(list(whole["values"].iloc[0]) == list(t.jacobian[0].values), f"values of sim {t.index}")
    check(whole.q50.iloc[0] == t.jacobian[0].quantiles[3], f"median singular value of sim {t.index}")
check((spectra["count"] == spectra["network.width"]).all(), "as many singular values as features")
fig, info = gradsim.plot.spectra_figure(jpb)
check(fig is not None and info["lines"] == 2 and len(fig.axes[1].lines) == 2,
      "a spectra figure: a configuration per width, against the block")
check(gradsim.plot.spectra_figure(zpb)[0] is None, "no spectra figure without spectra")
sj = gradsim.sims_frame(jpb)
check(sj.jacobian_log10_spread.notna().all() and sims_df.jacobian_log10_spread.isna().all(),
      "sims_frame has the spread with jacobian, NaN without")

# 6b. Detail levels: NORMS rows have the norms and NaN statistics, SUMMARY records no layers but
# the same log-ratio in sims_frame; the signal figure says what NORMS lacks, and skips SUMMARY.
dspec = os.path.join(tmp, "detail.textproto")
with open(dspec, "w") as f:
    f.write('seed: 3 base { network { depth: 8 width: 16 } batch: 8 }\n'
            'axis { path: "detail" texts: ["FULL", "NORMS", "SUMMARY"] }\n')
dpb = os.path.join(tmp, "detail.pb")
run("run", "-q", dspec, "-o", dpb)
dl, ds = gradsim.layers_frame(dpb), gradsim.sims_frame(dpb)
check(sorted(dl.detail.unique()) == ["FULL", "NORMS"], "layers_frame: rows of FULL and NORMS records only")
full, norms = dl[dl.detail == "FULL"], dl[dl.detail == "NORMS"]
check(list(norms.grad_norm) == list(full.grad_norm), "NORMS keeps every layer's gradient norm")
check(norms.output_variance.isna().all() and full.output_variance.notna().all(), "NORMS: statistics are NaN")
check(ds.log10_first_over_last.nunique() == 1 and math.isfinite(ds.log10_first_over_last[2]),
      "sims_frame: one log-ratio, whatever the detail")
check(list(ds.depth) == [8, 8, 8], "sims_frame: the depth of a SUMMARY record")
sfile = os.path.join(tmp, "summary.pb")
with open(dspec, "w") as f:
    f.write('base { network { depth: 8 width: 16 } batch: 8 detail: NORMS }\n')
run("run", "-q", dspec, "-o", sfile)
fig, _ = gradsim.plot.signal_figure(sfile)
check(any("detail NORMS" in t.get_text() for t in fig.axes[1].texts), "the NORMS signal figure says what it lacks")
with open(dspec, "w") as f:
    f.write('base { network { depth: 8 width: 16 } batch: 8 detail: SUMMARY }\n')
run("run", "-q", dspec, "-o", sfile)
check(gradsim.plot.signal_figure(sfile)[0] is None, "no signal figure from SUMMARY records")

# 6c. Training on a task: one evaluations row per evaluation, the verdict and score in
# sims_frame, and a trainability figure with a cell per (depth, gain), trained ones counted
# as the records say, and theory's 6 xi_c line.
tspec = os.path.join(tmp, "t.textproto")
with open(tspec, "w") as f:
    f.write('base { network { width: 8 activation { name: "tanh" } } batch: 16\n'
            '       train { steps: 20 lr: 0.05 eval_every: 10 task { kind: TEACHER } } }\n'
            'axis { path: "network.depth" numbers: [2, 4] }\n'
            'axis { path: "init.params.gain" numbers: [1.2, 1.5, 3.0] }\n')
tpb = os.path.join(tmp, "t.pb")
run("run", "-q", tspec, "-o", tpb)
records = list(gradsim.read(tpb)[1])
ev = gradsim.evaluations_frame(tpb)
check(len(ev) == 6 * 3 and list(ev.step[:3]) == [0, 10, 20], f"3 evaluations per simulation, got {len(ev)}")
check(list(ev.test_loss[:3]) == [e.test_loss for e in records[0].evaluations], "held-out losses as recorded")
check(ev.test_accuracy.isna().all(), "no accuracy for a regression task")
st = gradsim.sims_frame(tpb)
names = {1: "trained", 2: "did_not_train", 3: "diverged"}
check(list(st.train_verdict) == [names[t.verdict] for t in records], "train_verdict as recorded")
check(list(st.score) == [t.evaluations[-1].score for t in records], "the last score per simulation")
check(st.xi_c.notna().all(), "theory's xi_c for plain tanh stacks")
fig, info = gradsim.plot.trainability_figure(tpb)
check(fig is not None and info["cells"] == 6 and info["theory"]
      and info["trained"] == sum(t.verdict == 1 for t in records), f"a trainability cell per point, got {info}")
check(gradsim.plot.trainability_figure(zpb)[0] is None, "no trainability figure without a task")

# 6d. A transformer: rank collapse and attention entropy per sub-layer in layers_frame.
xspec = os.path.join(tmp, "x.textproto")
with open(xspec, "w") as f:
    f.write('base { network { depth: 2 width: 8 transformer { arrangement: PRE_LN tokens: 4 heads: 2 } } batch: 2 }\n')
xpb = os.path.join(tmp, "x.pb")
run("run", "-q", xspec, "-o", xpb)
xl = gradsim.layers_frame(xpb)
xt = next(gradsim.read(xpb)[1])
check(len(xl) == 4 and list(xl.rank_collapse) == [l.rank_collapse for l in xt.layers],
      "a row per sub-layer with its rank collapse")
check(list(xl.attention_entropy.isna()) == [False, True, False, True], "attention entropy in the attention rows only")

# 7. gradsim plot runs the package.
figdir = os.path.join(tmp, "cli_fig")
out = run("plot", zpb, "-o", figdir)
check("wrote signal" in out and os.path.exists(os.path.join(figdir, "phase.png")), "gradsim plot writes the figures")

print("python package: ok" if not failures else f"python package: {len(failures)} failures")
sys.exit(1 if failures else 0)
