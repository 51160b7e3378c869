"""Workload that makes N orphans exit at once, then reports zombies left.

usage: orphans.py N
An intermediate child forks N grandchildren that block reading a pipe, then
exits, so they are re-parented to the init. The workload then closes the
pipe: all N exit together. It waits until none of them is left (neither
alive nor a zombie) or 30 s pass, and prints "left=K zombies=Z" (and the
orphans' PIDs as "pids=P1,P2,...").
"""
import os
import sys
import time

n = int(sys.argv[1])
init_pid = os.getppid()  # pyinit
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
data = b""
while not data.endswith(b"\n"):
    chunk = os.read(ready_r, 1 << 16)
    if not chunk:
        break
    data += chunk
pids = [int(p) for p in data.split()]
os.waitpid(mid, 0)


def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            text = fh.read()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return fields[0], int(fields[1])


# All are orphans now: their parent must be the init (or its subreaper).
parents = {state(p)[1] for p in pids if state(p)}
os.close(w)
os.close(r)
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
