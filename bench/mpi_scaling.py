#!/usr/bin/python3
"""One sweep over an MPI job: how it scales on this machine, where the single writer's ceiling
lies, and dynamic scheduling against the static split of --shard. Prints three tables.

    /usr/bin/python3 bench/mpi_scaling.py [--gradsim build/bin/gradsim] [--quick]

Needs gradsim built with MPI (Open MPI's mpirun on PATH). Ranks run one thread each
(--threads 1); with more ranks than cores they are oversubscribed (mpirun --oversubscribe), so
beyond the core count the table measures the cost of sharing, not speed-up.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_btl="self,vader,tcp")

SMALL = """seed: 1
replicas: {n}
base {{ network {{ depth: 32 width: 32 activation {{ name: "tanh" }} }} batch: 32 detail: {detail} }}
"""
# Widths 512 and 32 alternate (the last axis varies fastest), so a static split into 2 shards
# by stride gives one shard every wide simulation: about 50x the cost of a narrow one.
UNBALANCED = """seed: 2
base {{ network {{ depth: 24 width: 32 activation {{ name: "tanh" }} }} batch: 64 dtype: FLOAT32 }}
axis {{ path: "init.params.gain" range {{ start: 0.9 stop: 1.1 count: {n} }} }}
axis {{ path: "network.width" numbers: [512, 32] }}
"""


def run(cmd, cwd):
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}{p.stderr}")
    return wall, p.stdout + p.stderr


def mpirun(n):
    # Open MPI binds each rank to one core by default (with 2 ranks or fewer): a rank's oneTBB
    # threads and its MPI thread would share it. gradsim ranks run threads of their own.
    return ["mpirun", "--oversubscribe", "--bind-to", "none", "-n", str(n)]


def writer_rate(out):
    m = re.search(r"writer \(rank 0\): (\d+) records, ([\d.]+) MB, ([\d.]+) s taking in and writing: (\d+) records/s, (\d+) MB/s", out)
    return (int(m.group(4)), int(m.group(5)), float(m.group(3))) if m else (0, 0, 0.0)


def rank_rows(out):
    return [(int(r), int(s), float(w), float(b), float(i)) for r, s, w, b, i in
            re.findall(r"\n +(\d+) +\d+ +(\d+) +([\d.]+) +([\d.]+) +([\d.]+)", out)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gradsim", default=os.path.join(os.path.dirname(__file__), "..", "build", "bin", "gradsim"))
    ap.add_argument("--quick", action="store_true", help="smaller sweeps (a smoke test)")
    a = ap.parse_args()
    g = os.path.abspath(a.gradsim)
    if not shutil.which("mpirun"):
        sys.exit("mpirun not found: apt install openmpi-bin libopenmpi-dev, and build gradsim with MPI")
    cores = os.cpu_count()
    work = tempfile.mkdtemp(prefix="gradsim_mpi_bench_")
    n_small = 400 if a.quick else 2000
    with open(os.path.join(work, "small.textproto"), "w") as f:
        f.write(SMALL.format(n=n_small, detail="FULL"))
    with open(os.path.join(work, "tiny.textproto"), "w") as f:
        f.write(SMALL.format(n=n_small, detail="SUMMARY"))
    with open(os.path.join(work, "unbalanced.textproto"), "w") as f:
        f.write(UNBALANCED.format(n=6 if a.quick else 60))

    print(f"# 1. Throughput against processes ({cores} cores; {n_small} simulations, width 32, depth 32, "
          f"batch 32, float64; each rank 1 thread)\n")
    print("| processes x threads | wall s | sweep s | sims/s (sweep) | vs 1 x 1 | rank idle % | same bytes |")
    print("|---|---:|---:|---:|---:|---|:---:|")
    ref_wall, _ = run([g, "run", "-q", "small.textproto", "-o", "one.pb", "--threads", "1"], work)
    ref = open(os.path.join(work, "one.pb"), "rb").read()
    print(f"| 1 x 1 (no mpirun) | {ref_wall:.2f} | {ref_wall:.2f} | {n_small / ref_wall:.0f} | 1.00 | - | - |")
    wall, _ = run([g, "run", "-q", "small.textproto", "-o", "two.pb", "--threads", str(cores)], work)
    print(f"| 1 x {cores} (no mpirun) | {wall:.2f} | {wall:.2f} | {n_small / wall:.0f} | {ref_wall / wall:.2f} | - | - |")
    for n in (1, 2, 3, 4):
        wall, out = run(mpirun(n) + [g, "run", "-q", "small.textproto", "-o", f"n{n}.pb", "--threads", "1",
                                     "--rank-stats"], work)
        rows = rank_rows(out)
        # From the ranks' first ask to their last record (one process under mpirun runs as without).
        sweep = max(w for _, _, w, _, _ in rows) if rows else wall
        same = open(os.path.join(work, f"n{n}.pb"), "rb").read() == ref
        idle = " / ".join(f"{i:.0f}" for *_, i in rows)
        print(f"| {n} x 1 (mpirun) | {wall:.2f} | {sweep:.2f} | {n_small / sweep:.0f} | {ref_wall / sweep:.2f} | "
              f"{idle} | {'yes' if same else 'NO'} |")
    print("\nwall: the whole command, mpirun's start and stop included; sweep: the ranks' own time.")

    print("\n# 2. The writer's ceiling (rank 0's time to receive, check and write each record; "
          "4 ranks of 1 thread)\n")
    print("| detail | bytes/record | records | writer s | records/s at most | MB/s at most |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, spec in (("FULL", "small.textproto"), ("SUMMARY", "tiny.textproto")):
        _, out = run(mpirun(4) + [g, "run", "-q", spec, "-o", f"w_{name}.pb", "--threads", "1", "--rank-stats"], work)
        rate, mbs, busy = writer_rate(out)
        size = os.path.getsize(os.path.join(work, f"w_{name}.pb")) / n_small
        print(f"| {name} | {size:.0f} | {n_small} | {busy:.3f} | {rate} | {mbs} |")

    print("\n# 3. An unbalanced sweep on 2 processes of 1 thread: dynamic (mpirun) against the static "
          "split of --shard (2 processes at once, then merge)\n")
    dyn_wall, out = run(mpirun(2) + [g, "run", "-q", "unbalanced.textproto", "-o", "dyn.pb", "--threads", "1",
                                     "--rank-stats"], work)
    rows = rank_rows(out)
    t0 = time.perf_counter()
    procs = [subprocess.Popen([g, "run", "-q", "unbalanced.textproto", "-o", f"s{i}.pb", "--threads", "1",
                               "--shard", f"{i}/2"], cwd=work, env=ENV, stdout=subprocess.DEVNULL)
             for i in range(2)]
    ends = [None] * len(procs)
    while None in ends:  # each shard's own end
        for i, p in enumerate(procs):
            if ends[i] is None and p.poll() is not None:
                ends[i] = time.perf_counter() - t0
        time.sleep(0.001)
    merge_wall, _ = run([g, "merge", "s0.pb", "s1.pb", "-o", "static.pb"], work)
    static_wall = max(ends) + merge_wall
    same = open(os.path.join(work, "dyn.pb"), "rb").read() == open(os.path.join(work, "static.pb"), "rb").read()
    print("| schedule | wall s | rank | sims | busy s | idle % |")
    print("|---|---:|---:|---:|---:|---:|")
    for r, s, w, b, i in rows:
        print(f"| dynamic (mpirun -n 2) | {dyn_wall:.2f} | {r} | {s} | {b:.2f} | {i:.1f} |")
    for i, e in enumerate(ends):
        print(f"| static (--shard {i}/2, merge {merge_wall:.2f} s) | {static_wall:.2f} | {i} | - | {e:.2f} | "
              f"{100 * (1 - e / max(ends)):.1f} |")
    print(f"\ndynamic / static wall time: {dyn_wall / static_wall:.2f}; the two files are "
          f"{'the same bytes' if same else 'DIFFERENT'}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
