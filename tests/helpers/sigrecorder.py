"""Workload that records every signal it receives, one number per line.

usage: sigrecorder.py OUTFILE
Writes "ready" once its handlers are installed. Exits 0 on SIGUSR2 after
recording it when EXIT_ON_USR2 is set in the environment.
"""
import os
import signal
import sys
import time

out = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
exit_on = {int(s) for s in os.environ.get("EXIT_ON", "").split(",") if s}


def record(signum, frame):
    os.write(out, f"{signum}\n".encode())
    if signum in exit_on:
        os._exit(0)


for sig in signal.valid_signals():
    if sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD):
        continue
    try:
        signal.signal(sig, record)
    except (OSError, ValueError, RuntimeError):
        pass
os.write(out, b"ready\n")
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    time.sleep(0.05)
sys.exit(3)
