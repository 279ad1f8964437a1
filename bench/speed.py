#!/usr/bin/python3
"""gradsim's speed against this machine's float32 FMA ceiling and against the PyTorch script a
user would write (bench/torch_sweeps.py), measured side by side in one run, interleaved so that
machine noise hits both alike, and printed as a table against the targets of the performance
work (bench/README.md).

Usage: /usr/bin/python3 bench/speed.py [BUILD_DIR] [REPETITIONS]
Builds gradsim and bench/fma_peak.cpp in BUILD_DIR (default build) if needed. The PyTorch
rows need Debian's python3-torch (sudo apt-get install python3-torch); without it they are
skipped. PyTorch runs at 1 and 2 threads with OMP_WAIT_POLICY=passive and the best is taken;
gradsim is timed as a whole process (start-up and writing the traces included), PyTorch's
loop without interpreter start-up and imports.
"""
import os
import re
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # before torch loads its OpenMP runtime
HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "build"))
REPS = int(sys.argv[2]) if len(sys.argv) > 2 else 2
GRADSIM = os.path.join(BUILD, "bin", "gradsim")
SIMS = {"ref": 48, "small": 1000}
THREADS = (2, 1)

torch_sweeps = None  # imported after the memory measurements: a child forked from a process
                     # holding PyTorch would count its pages in the child's peak memory


def build():
    subprocess.run(["cmake", "--build", BUILD, "--target", "gradsim", "gradsim_plugins", "fma_peak"],
                   check=True, stdout=subprocess.DEVNULL)


def fma_ceiling():
    """{isa: {threads: GFLOP/s}} from bench/fma_peak.cpp."""
    out = subprocess.run([os.path.join(BUILD, "bin", "fma_peak"), *map(str, sorted(set(THREADS)))],
                         check=True, capture_output=True, text=True).stdout
    peak = {}
    for m in re.finditer(r"threads (\d+)\s+GFLOP/s ([\d.]+).*\((\w+)\)", out):
        peak.setdefault(m.group(3), {})[int(m.group(1))] = float(m.group(2))
    return peak


def run_gradsim(spec, threads, out):
    """Wall seconds and peak resident memory (MB) of one whole gradsim run."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([GRADSIM, "run", "-q", spec, "-o", out, "--threads", str(threads)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if status != 0:
        sys.exit(f"speed.py: gradsim failed on {spec} (status {status})")
    return seconds, usage.ru_maxrss / 1024


def run_torch(name, threads):
    t0 = time.perf_counter()
    torch_sweeps.run(name, threads)
    return time.perf_counter() - t0


def main():
    global torch_sweeps
    build()
    peak = fma_ceiling()
    tmp = tempfile.mkdtemp()
    # Memory in sweep length: 100 and 10,000 small simulations.
    memory = {}
    small = open(os.path.join(HERE, "specs", "small.textproto")).read()
    for sims in (100, 10000):
        spec = os.path.join(tmp, f"m{sims}.textproto")
        with open(spec, "w") as f:
            f.write(re.sub(r"replicas: \d+", f"replicas: {sims // 4}", small))
        memory[sims] = run_gradsim(spec, 2, os.path.join(tmp, "m.pb"))[1]
    try:
        sys.path.insert(0, HERE)
        import torch_sweeps
        torch_sweeps.simulate("tanh", 2, 64, 1.0, 0, 128)  # warm-up
    except ImportError:
        print("PyTorch is not installed (sudo apt-get install python3-torch): gradsim rows only", file=sys.stderr)
    best = {}
    for rep in range(REPS):
        for name in ("ref", "small"):
            for threads in THREADS:
                t, _ = run_gradsim(os.path.join(HERE, "specs", name + ".textproto"), threads, os.path.join(tmp, "t.pb"))
                best[("gradsim", name, threads)] = min(best.get(("gradsim", name, threads), 1e9), t)
                if torch_sweeps:
                    t = run_torch(name, threads)
                    best[("torch", name, threads)] = min(best.get(("torch", name, threads), 1e9), t)
        print(f"  repetition {rep + 1} of {REPS} done", file=sys.stderr, flush=True)

    cores = os.cpu_count()
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    isas = sorted(peak, key=lambda i: -peak[i][max(THREADS)])
    print(f"machine: {cores} cores, {model}")
    print("float32 FMA ceiling: " + ", ".join(
        f"{isa} {peak[isa][max(THREADS)]:.0f} GFLOP/s on {max(THREADS)} threads ({peak[isa][1]:.0f} on 1)" for isa in isas))
    gflop = 6 * 128 * sum(w * w * d for d in (16, 64) for w in (64, 256, 1024)) * 8 * 1e-9  # act x gain x seed

    def row(who, name, threads):
        t = best.get((who, name, threads))
        if t is None:
            return
        rate = f"{gflop / t:8.1f} GFLOP/s" if name == "ref" else f"{SIMS[name] / t:8.0f} sims/s"
        share = "  " + " / ".join(f"{100 * gflop / t / peak[i][threads]:.0f}% of {i}" for i in isas) if name == "ref" else ""
        print(f"  {who:8s} {threads} thread{'s' if threads > 1 else ' '}  {t:7.2f} s  {rate}{share}")

    targets = []
    for name, title in (("ref", f"reference sweep (48 simulations, {gflop:.0f} GFLOP)"),
                        ("small", "small simulations (1000: width 32, depth 32, batch 32)")):
        print(f"{title}, best of {REPS}:")
        for who in ("gradsim", "torch"):
            for threads in THREADS:
                row(who, name, threads)
        g = min(best[("gradsim", name, t)] for t in THREADS)
        if torch_sweeps:
            tt = min(best[("torch", name, t)] for t in THREADS)
            print(f"  gradsim is {tt / g:.1f}x faster than PyTorch's best thread setting")
            if name == "small":
                targets.append((">= 25x PyTorch's simulations per second", f"{tt / g:.1f}x", tt / g >= 25))
        if name == "ref":
            share = gflop / best[("gradsim", "ref", 2)] / peak[isas[0]][2]
            targets.append((f">= 60% of the FMA ceiling ({isas[0]}), 2 threads", f"{100 * share:.0f}%", share >= 0.6))
        eff = best[("gradsim", name, 1)] / (2 * best[("gradsim", name, 2)])
        print(f"  parallel efficiency at 2 threads: {100 * eff:.0f}%")
        if name == "small":
            targets.append((">= 90% parallel efficiency at 2 threads (small)", f"{100 * eff:.1f}%", eff >= 0.9))
    print(f"memory (peak resident): 100 small simulations {memory[100]:.1f} MB, 10,000: {memory[10000]:.1f} MB")
    targets.append(("memory flat in sweep length (within 10%)", f"{memory[10000] / memory[100]:.2f}x",
                    memory[10000] <= 1.1 * memory[100]))
    print("targets:")
    for what, value, ok in targets:
        print(f"  {'met ' if ok else 'MISS'}  {what}: {value}")


if __name__ == "__main__":
    main()
