#!/usr/bin/env bash
# Prints how much slower bfloat16 and float16 simulations are than float32 (width 256), and
# how much of that is the matrix products. Usage: bash bench/formats.sh [build dir]
set -euo pipefail
build=${1:-build}
cmake --build "$build" --target formats_bench >/dev/null
"$build/bin/formats_bench" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
  --benchmark_format=json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
rows = {b["run_name"]: b["real_time"] for b in json.load(sys.stdin)["benchmarks"] if b["aggregate_name"] == "median"}
formats = [("FLOAT64", "double"), ("FLOAT32", "float"), ("BFLOAT16", "bfloat16"), ("FLOAT16", "float16")]
sim = {f: rows[f"BM_Simulation/{i + 1}"] for i, (f, _) in enumerate(formats)}
gemm = {f: rows[f"BM_DenseProducts<{t}, false>"] for f, t in formats}
emulated = {f: rows[f"BM_DenseProducts<{t}, true>"] for f, t in formats if t in ("bfloat16", "float16")}
base = sim["FLOAT32"]
print("one simulation: width 256, depth 16, batch 128, tanh (medians of 3 runs)")
print("format     simulation ms  vs float32   its products ms  share   products w/ Eigen emulation ms")
for f, _ in formats:
    em = f"{16 * emulated[f]:>14.1f}  ({emulated[f] / gemm[f]:.0f}x)" if f in emulated else ""
    print(f"{f:<10} {sim[f]:>13.1f}  {sim[f] / base:>9.1f}x  {16 * gemm[f]:>15.1f}  {16 * gemm[f] / sim[f]:>5.0%}   {em}")
'
