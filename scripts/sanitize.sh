#!/usr/bin/env bash
# The sanitizer and fuzzing stages of CI (bash scripts/sanitize.sh [asan|tsan|fuzz|all]):
#   asan: gradsim and its whole test suite built with clang, AddressSanitizer and
#         UndefinedBehaviorSanitizer (build-asan/), and run there;
#   fuzz: the libFuzzer targets of that build (spec parser and validator, axis expansion,
#         traces reader and resume, the plugin file reader), each for $GRADSIM_FUZZ_SECONDS
#         (default 30) from the seed corpus in tests/fuzz/corpus (the plugin reader's: two
#         built plugins); a crash fails the stage and leaves the input in build-asan/;
#   tsan: the sweep, CLI and traces tests under ThreadSanitizer (less the CLI's one-threaded
#         theory, gradcheck, plugins and inspect commands) (build-tsan/, g++), with
#         oneTBB's own internals suppressed (tests/tsan.supp; see there what that leaves), and
#         the MPI runs whose ranks run threads side by side (rank 0's queue and writer, the
#         other ranks' loops), under mpirun with shared memory only.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:-all}

# A gtest command as $(nproc) processes, each a share of its tests (GTEST_SHARD_INDEX): a
# sanitized process keeps about one core busy. Each share's output is printed when it ends.
sharded() {
  local n i status=0 pids=() logs=()
  n=$(nproc)
  for ((i = 0; i < n; i++)); do
    logs+=("$(mktemp)")
    GTEST_TOTAL_SHARDS=$n GTEST_SHARD_INDEX=$i "$@" >"${logs[i]}" 2>&1 &
    pids+=($!)
  done
  for ((i = 0; i < n; i++)); do
    wait "${pids[i]}" || status=1
    echo "== share $((i + 1)) of $n"; cat "${logs[i]}"; rm -f "${logs[i]}"
  done
  return $status
}
bash scripts/deps.sh
export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1  # cache hits across clones of the repository

if [[ $stage == asan || $stage == fuzz || $stage == all ]]; then
  CXX=clang++ cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DGRADSIM_FUZZ=ON \
    -DCMAKE_CXX_FLAGS="-O1 -g1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -fsanitize=fuzzer-no-link" >/dev/null
  cmake --build build-asan
fi
if [[ $stage == asan || $stage == all ]]; then
  # The gtest suite in one process (under ASan each process start costs seconds), with a
  # time limit for the whole; then the tests that are not gtest (install, Python, compile-fail).
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 sharded timeout 2400 ./bin/gradsim_tests --gtest_brief=1 &&
     ctest --output-on-failure -j "$(nproc)" -R '^(Install|Python|CompileFail)\.')
fi
if [[ $stage == fuzz || $stage == all ]]; then
  for target in spec axes traces plugin; do
    corpus=build-asan/fuzz-corpus/$target
    mkdir -p "$corpus"
    if [[ $target == plugin ]]; then  # seeds: real plugin files of this build
      cp -n build-asan/lib/gradsim/plugins/gradsim-{relu,clipping}.so "$corpus"/
    else
      cp -n tests/fuzz/corpus/$target/* "$corpus"/
    fi
    echo "fuzz_$target: ${GRADSIM_FUZZ_SECONDS:-30} s"
    (cd build-asan && ./bin/fuzz_$target -max_total_time="${GRADSIM_FUZZ_SECONDS:-30}" -rss_limit_mb=4096 \
        -timeout=30 -print_final_stats=1 "fuzz-corpus/$target" 2>&1 | grep -E "stat::number_of_executed_units|ERROR|SUMMARY|Done" )
  done
fi
if [[ $stage == tsan || $stage == all ]]; then
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_CXX_FLAGS="-O1 -g1 -fsanitize=thread" >/dev/null
  cmake --build build-tsan --target gradsim gradsim_tests gradsim_plugins gradsim_sims
  (cd build-tsan && TSAN_OPTIONS="suppressions=$PWD/../tests/tsan.supp halt_on_error=1 exitcode=66" \
    sharded ./bin/gradsim_tests --gtest_brief=1 \
      --gtest_filter='Sweep.*:Cli.*:TracesFixture.*:Engine.*:Mpi.OneFile*:Mpi.Smallest*:Mpi.RanksWithout*-Cli.Theory*:Cli.Gradcheck*:Cli.Plugins*:Cli.Inspect*:Cli.ExtraPlugin*')
fi
