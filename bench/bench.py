"""pyinit against tini, dumb-init and catatonit, side by side in one run.

usage: python bench/bench.py [--runs N] [--signals N] [--burst N] [--write docs/benchmarks.md]

Every metric is printed as median (min-max) and as a ratio to tini measured
in the same run: these 2-core VMs are noisy, so only same-run ratios mean
anything. Installs the Debian packages of the other inits if they are
missing, and installs pyinit (not editable, as users get it) into a
throw-away virtualenv built from /usr/bin/python3, so no pyenv shim and no
editable-install finder sits in front of the interpreter.

Metrics:
  first_insn   exec of the init -> the workload's first instruction
               (workload: ``date +%s%N``; its own start-up is in every column)
  exit_lag     the workload's last output -> the init's exit (a workload that
               exits at once, while pyinit is still loading trio)
  exit_lag_steady  the same for a workload that runs 0.4 s first
  startup      wall time of ``INIT /bin/true``
  rss          peak RSS (VmHWM) of the init while it supervises ``sleep``
  burst        as PID 1 of a new PID namespace: 2000 orphans exit at once,
               time until the init has reaped them all
  signal       SIGUSR1 sent to the init -> received by the workload
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORKLOADS = HERE / "workloads.py"
VENV = Path(os.environ.get("PYINIT_BENCH_VENV", "/tmp/pyinit-bench/venv"))
PYTHON = "/usr/bin/python3"
DEBIAN = {"tini": "tini", "dumb-init": "dumb-init", "catatonit": "catatonit"}


def ensure_packages() -> None:
    missing = [pkg for tool, pkg in DEBIAN.items() if shutil.which(tool) is None]
    if missing:
        print(f"installing {' '.join(missing)} ...", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env,
                       stdout=subprocess.DEVNULL)


def ensure_pyinit() -> str:
    if not (VENV / "bin" / "python").exists():
        subprocess.run([PYTHON, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                    "--force-reinstall", "--no-deps", str(REPO)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                    str(REPO)], check=True)
    return str(VENV / "bin" / "pyinit")


def inits(pyinit: str) -> dict[str, list[str]]:
    return {
        "plain": [],
        "tini": ["tini", "--"],
        "dumb-init": ["dumb-init"],
        "catatonit": ["catatonit", "--"],
        "pyinit": [pyinit, "--"],
    }


def quiet(**kw: object) -> dict[str, object]:
    return {"stdin": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, **kw}


# ------------------------------------------------------------------ measurements
def first_insn_and_exit(prefix: list[str], runs: int) -> tuple[list[float], list[float]]:
    first, lag = [], []
    for _ in range(runs):
        t0 = time.time_ns()
        proc = subprocess.Popen([*prefix, "date", "+%s%N"], stdout=subprocess.PIPE, **quiet())
        assert proc.stdout is not None
        printed = int(proc.stdout.readline())
        proc.wait()
        t_end = time.time_ns()
        first.append((printed - t0) / 1e6)
        lag.append((t_end - printed) / 1e6)
    return first, lag


def exit_lag_steady(prefix: list[str], runs: int) -> list[float]:
    """Like exit_lag, but the workload outlives the init's start-up."""
    lag = []
    for _ in range(runs):
        proc = subprocess.Popen([*prefix, "sh", "-c", "sleep 0.4; exec date +%s%N"],
                                stdout=subprocess.PIPE, **quiet())
        assert proc.stdout is not None
        printed = int(proc.stdout.readline())
        proc.wait()
        lag.append((time.time_ns() - printed) / 1e6)
    return lag


def startup(prefix: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        subprocess.run([*prefix, "/bin/true"], check=True, **quiet())
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


def python_floor(runs: int) -> list[float]:
    return startup([PYTHON, "-I", "-S", "-c", "pass", "#"], runs)


def rss(prefix: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        proc = subprocess.Popen([*prefix, "sleep", "1.5"], **quiet(stdout=subprocess.DEVNULL))
        time.sleep(1.0)  # pyinit has long finished importing by now
        with open(f"/proc/{proc.pid}/status") as fh:
            hwm = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM"))
        proc.wait()
        out.append(float(hwm))
    return out


def burst(prefix: list[str], runs: int, n: int) -> list[float]:
    return burst_with_cpu(prefix, runs, n)[0]


def burst_with_cpu(prefix: list[str], runs: int, n: int) -> tuple[list[float], list[float]]:
    """The drain time of each burst, and the CPU time the init spent meanwhile."""
    drain, cpu = [], []
    for _ in range(runs):
        res = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", *prefix, PYTHON, "-I",
             str(WORKLOADS), "burst", str(n)],
            capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
        )
        fields = dict(kv.split("=") for kv in res.stdout.split())
        if fields.get("left") != "0":
            drain.append(float("inf"))
            cpu.append(float("inf"))
        else:
            drain.append(float(fields["drain_ms"]))
            cpu.append(float(fields["init_cpu_ms"]))
    return drain, cpu


def signal_latency(prefix: list[str], n: int) -> list[float]:
    import signal

    proc = subprocess.Popen([*prefix, PYTHON, "-I", str(WORKLOADS), "signals", str(n)],
                            stdout=subprocess.PIPE, text=True, **quiet())
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.0)  # every init is past its start-up (pyinit: supervising)
    out = []
    for _ in range(n):
        t0 = time.time_ns()
        os.kill(proc.pid, signal.SIGUSR1)
        got = int(proc.stdout.readline())
        out.append((got - t0) / 1e3)
        time.sleep(0.002)
    proc.wait(timeout=30)
    return out


# ------------------------------------------------------------------ report
def fmt(values: list[float], digits: int = 2) -> str:
    if not values:
        return "–"
    med = statistics.median(values)
    return f"{med:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=40, help="runs for the start-up metrics")
    ap.add_argument("--signals", type=int, default=200, help="signals for the latency")
    ap.add_argument("--burst", type=int, default=2000, help="orphans in the burst")
    ap.add_argument("--burst-runs", type=int, default=5)
    ap.add_argument("--write", type=Path, help="also write the markdown table to this file")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench.py needs root (unshare --pid for the burst)", file=sys.stderr)
        return 2
    ensure_packages()
    pyinit = ensure_pyinit()
    table = inits(pyinit)
    results: dict[str, dict[str, list[float]]] = {name: {} for name in table}
    floor = python_floor(args.runs)
    # Interleave the inits run by run, so drift on the machine hits all alike.
    for name, prefix in table.items():
        print(f"measuring {name} ...", file=sys.stderr)
        first, lag = first_insn_and_exit(prefix, args.runs)
        results[name]["first_insn"] = first
        results[name]["exit_lag"] = lag
        results[name]["startup"] = startup(prefix, args.runs)
        results[name]["exit_lag_steady"] = exit_lag_steady(prefix, max(5, args.runs // 4))
        if name != "plain":
            results[name]["rss"] = rss(prefix, 3)
            results[name]["burst"] = burst(prefix, args.burst_runs, args.burst)
        results[name]["signal"] = signal_latency(prefix, args.signals)

    metrics = [
        ("first_insn", "exec → workload's first instruction (ms)", 2),
        ("startup", "wall time of `INIT /bin/true` (ms)", 2),
        ("exit_lag", "workload's exit → init's exit, workload exits at once (ms)", 2),
        ("exit_lag_steady", "workload's exit → init's exit, after 0.4 s (ms)", 2),
        ("rss", "peak RSS while supervising (kB)", 0),
        ("burst", f"reap a burst of {args.burst} orphans as PID 1 (ms)", 1),
        ("signal", "SIGUSR1 forwarding latency (µs)", 0),
    ]
    names = list(table)
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()}: "
        f"Linux {platform.release()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()} for the harness, `{PYTHON}` for pyinit. "
        f"Median (min–max) of {args.runs} runs for the start-up metrics, "
        f"{args.signals} signals, {args.burst_runs} bursts, 3 RSS samples.",
        "",
        "| metric | " + " | ".join(names) + " | pyinit / tini |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    for key, label, digits in metrics:
        cells = [fmt(results[n].get(key, []), digits) for n in names]
        ratio = statistics.median(results["pyinit"][key]) / statistics.median(results["tini"][key])
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {ratio:.2f}× |")
    floor_med = statistics.median(floor)
    first_med = statistics.median(results["pyinit"]["first_insn"])
    lines += [
        "",
        f"Bare `{PYTHON} -I -S -c pass`: {fmt(floor)} ms. pyinit's time to the workload's "
        f"first instruction is {first_med / floor_med:.2f}× that.",
    ]
    report = "\n".join(lines)
    print(report)
    if args.write:
        sys.path.insert(0, str(HERE))
        from report import replace_block

        replace_block(args.write, "bench", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
