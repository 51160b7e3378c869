"""Workload: three orphans of the init that end when the test says so.

usage: orphans_on_cue.py
An intermediate child forks three grandchildren that block reading a pipe,
then exits, so they are re-parented to the init (pyinit). The workload
prints "orphan PID" for each and "spawned", then reads stdin: the first line
is the cue for the orphans to end (it closes the pipe's write end); at the
next line, or end of input, it exits 0.
"""
import os
import sys

r, w = os.pipe()
ready_r, ready_w = os.pipe()
mid = os.fork()
if mid == 0:
    os.close(ready_r)
    pids = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            os.close(w)
            os.close(ready_w)
            os.read(r, 1)  # until the workload closes the write end
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
os.waitpid(mid, 0)  # the three are orphans from here on
for pid in data.split():
    print(f"orphan {int(pid)}")
print("spawned", flush=True)
sys.stdin.readline()
os.close(w)  # the orphans end
sys.stdin.readline()
