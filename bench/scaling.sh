#!/usr/bin/env bash
# Parallel efficiency of the benchmark sweeps (bench/specs): simulations per second at each
# thread count (best of 3 whole runs, start-up included) and rate_N / (N x rate_1).
# Usage: bash bench/scaling.sh "GRADSIM COMMAND" THREADS...
#   e.g. bash bench/scaling.sh build/bin/gradsim 1 2
set -euo pipefail
gradsim=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
for spec in small ref; do
  sims=$([ $spec = small ] && echo 1000 || echo 48)
  echo "$spec sweep ($sims simulations): threads, sims/s, speed-up, efficiency"
  one=""
  for n in "$@"; do
    best=""
    for rep in 1 2 3; do
      t0=$(date +%s%N)
      $gradsim run -q "$here/specs/$spec.textproto" -o "$out/t.pb" --threads "$n" >/dev/null 2>&1
      t=$(( $(date +%s%N) - t0 ))
      if [ -z "$best" ] || [ "$t" -lt "$best" ]; then best=$t; fi
    done
    one=${one:-$best}
    awk -v n="$n" -v t="$best" -v t1="$one" -v s="$sims" \
      'BEGIN { printf "%7d  %8.1f  %6.2fx  %5.0f%%\n", n, s / (t * 1e-9), t1 / t, 100 * t1 / (n * t) }'
  done
done
