"""Workloads the benchmark runs under each init (the same for all of them).

usage:
  workloads.py signals N   block SIGUSR1, print "ready", then N times: wait for
                           it and print the CLOCK_REALTIME ns it arrived at
  workloads.py burst N     (as the workload of an init that is PID 1 of a new
                           PID namespace with its own /proc) make N orphans
                           exit at once and print how long until the init has
                           reaped them all, and the CPU time the init
                           spent meanwhile: "drain_ms=… init_cpu_ms=… left=…"
"""

from __future__ import annotations

import os
import signal
import sys
import time


def signals(n: int) -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    print("ready", flush=True)
    for _ in range(n):
        signal.sigwaitinfo({signal.SIGUSR1})
        print(time.time_ns(), flush=True)


def _count_processes() -> int:
    return sum(1 for name in os.listdir("/proc") if name.isdigit())


def _init_cpu_ns() -> int:
    """CPU time the init (PID 1 of this namespace) has used so far, in ns.

    Summed over its threads: /proc/1/schedstat alone is the main thread's, and
    pyinit reaps in a thread of its own.
    """
    total = 0
    for tid in os.listdir("/proc/1/task"):
        try:
            with open(f"/proc/1/task/{tid}/schedstat") as fh:
                total += int(fh.read().split()[0])
        except FileNotFoundError:  # a thread that just ended
            pass
    return total


def burst(n: int) -> None:
    r, w = os.pipe()
    ready_r, ready_w = os.pipe()
    base = _count_processes()
    mid = os.fork()
    if mid == 0:
        os.close(ready_r)
        for _ in range(n):
            if os.fork() == 0:
                os.close(w)
                os.read(r, 1)
                os._exit(0)
        os.write(ready_w, b"x")
        os._exit(0)
    os.close(ready_w)
    os.read(ready_r, 1)
    os.waitpid(mid, 0)
    # Every orphan now belongs to the init; wait until all are alive (not
    # still being forked) before releasing them together.
    while _count_processes() < base + n:
        time.sleep(0.001)
    cpu0 = _init_cpu_ns()
    t0 = time.monotonic_ns()
    os.close(w)
    deadline = t0 + 10_000_000_000
    left = n
    while time.monotonic_ns() < deadline:
        left = _count_processes() - base
        if left <= 0:
            break
        time.sleep(0.0005)
    drain = (time.monotonic_ns() - t0) / 1e6
    cpu = (_init_cpu_ns() - cpu0) / 1e6
    print(f"drain_ms={drain:.3f} init_cpu_ms={cpu:.3f} left={max(left, 0)}", flush=True)


if __name__ == "__main__":
    {"signals": signals, "burst": burst}[sys.argv[1]](int(sys.argv[2]))
