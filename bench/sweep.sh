#!/usr/bin/env bash
# Prints simulations per second of a fixed sweep (24 simulations, width 256, depth 32) at 1 to
# all threads, and the parallel efficiency (rate on N threads / (N x rate on 1 thread)).
# Usage: bash bench/sweep.sh [build dir]
set -euo pipefail
build=${1:-build}
cmake --build "$build" --target sweep_bench >/dev/null
"$build/bin/sweep_bench" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
  --benchmark_format=json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
runs = [b for b in json.load(sys.stdin)["benchmarks"] if b["aggregate_name"] == "median"]
rate = {int(b["run_name"].split("/")[1]): b["sims_per_s"] for b in runs}
print("sweep: 24 simulations, width 256, depth 32, batch 128, float32 (medians of 3 runs)")
print("threads  sims/s  speed-up  efficiency")
for n in sorted(rate):
    print(f"{n:>7}  {rate[n]:>6.1f}  {rate[n] / rate[1]:>7.2f}x  {rate[n] / (n * rate[1]):>10.0%}")
'
