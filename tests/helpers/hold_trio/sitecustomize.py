"""Keep pyinit in its early phase for as long as a test wants.

Put this directory on PYTHONPATH and name a readable descriptor in
PYINIT_TEST_HOLD_FD: the first ``import trio`` then blocks until that
descriptor can be read (the test writes a byte, or closes the other end).
pyinit's early phase is exactly "while trio loads", so until then every
signal goes through the early forwarder (sigtimedwait) and every exit
through the early reaper. Nothing in pyinit itself knows about this.

Only pyinit's own interpreter sees it: the test workloads run with ``-I``.
"""

import os
import sys


class _HoldTrio:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def find_spec(self, name, path=None, target=None):
        if name == "trio" and self.fd >= 0:
            fd, self.fd = self.fd, -1
            try:
                os.read(fd, 1)
            finally:
                os.close(fd)
        return None  # the normal import machinery goes on


_fd = os.environ.pop("PYINIT_TEST_HOLD_FD", "")
if _fd:
    sys.meta_path.insert(0, _HoldTrio(int(_fd)))
