"""Workloads of orphans: children of an intermediate process that exits, so they are
re-parented to the init, each blocked reading a pipe until the workload closes it.

usage: orphans.py N
    The N orphans exit together. The workload waits until none of them is left
    (neither alive nor a zombie) or 30 s pass, and prints "left=K zombies=Z" (and
    the orphans' PIDs as "pids=P1,P2,...").

usage: orphans.py --on-cue
    Three orphans that end when the test says so. The workload prints "orphan PID"
    for each and "spawned", then reads stdin: the first line is the cue for the
    orphans to end; at the next line, or end of input, it exits 0.
"""
import os
import sys
import time


def make_orphans(n):
    """N orphans of the init; their PIDs, and the pipe's write end that ends them all."""
    r, w = os.pipe()
    ready_r, ready_w = os.pipe()
    mid = os.fork()
    if mid == 0:
        os.close(ready_r)
        pids = []
        for _ in range(n):
            pid = os.fork()
            if pid == 0:
                os.close(w)
                os.close(ready_w)
                os.read(r, 1)  # blocks until the workload closes the write end
                os._exit(0)
            pids.append(pid)
        os.write(ready_w, (" ".join(map(str, pids)) + "\n").encode())
        os._exit(0)
    os.close(ready_w)
    os.close(r)
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(ready_r, 1 << 16)
        if not chunk:
            break
        data += chunk
    os.close(ready_r)
    os.waitpid(mid, 0)  # they are orphans from here on
    return [int(p) for p in data.split()], w


def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            text = fh.read()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return fields[0], int(fields[1])


def all_at_once(n):
    init_pid = os.getppid()  # pyinit
    pids, w = make_orphans(n)
    # All are orphans now: their parent must be the init (or its subreaper).
    parents = {state(p)[1] for p in pids if state(p)}
    os.close(w)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        states = [s for s in map(state, pids) if s is not None]
        if not states:
            break
        time.sleep(0.01)
    states = [s for s in map(state, pids) if s is not None]
    zombies = sum(1 for s in states if s[0] == "Z")
    print(f"count={len(pids)} init={init_pid} parents={sorted(parents)}",
          f"left={len(states)} zombies={zombies} pids={','.join(map(str, pids))}", flush=True)


def on_cue():
    pids, w = make_orphans(3)
    for pid in pids:
        print(f"orphan {pid}")
    print("spawned", flush=True)
    sys.stdin.readline()
    os.close(w)  # the orphans end
    sys.stdin.readline()


if sys.argv[1] == "--on-cue":
    on_cue()
else:
    all_at_once(int(sys.argv[1]))
