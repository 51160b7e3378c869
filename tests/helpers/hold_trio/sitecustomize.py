"""Keep pyinit in its early phase for as long as a test wants.

Put this directory on PYTHONPATH and name a readable descriptor in
PYINIT_TEST_HOLD_FD: pyinit's import of trio then waits until that
descriptor can be read (the test writes a byte, or closes the other end).
pyinit's early phase is exactly "while trio loads", so until then every
signal goes through the early forwarder and every exit through the early
reaper. Nothing in pyinit itself knows about this.

The two early phases are held in two ways:

* ``pyinit -- CMD`` imports trio in a thread while the main thread reads
  signals with ``sigtimedwait``: the first ``import trio`` simply blocks on
  the descriptor (a finder first on ``sys.meta_path``).
* The container's PID 1 of ``pyinit run`` and ``pyinit sandbox`` imports
  trio from memory in its only thread and forwards and reaps between two
  modules (``Bundle.between``, pyinit/memimport.py). There, before trio's
  module runs, the hold waits for the descriptor *or* a pending signal
  (a signalfd, which only watches: it takes nothing), and on each signal
  calls pyinit's own ``between`` callback, which takes and forwards it as it
  would between two modules. The middle process and PID 1 close every
  descriptor they do not need (``pyinit.linux.task.close_from``): the hold's
  descriptor is kept open as well.

Only pyinit's own interpreter sees this: the test workloads run with ``-I``,
and a container's workload gets the environment of its config.
"""

import os
import sys

_fd = int(os.environ.pop("PYINIT_TEST_HOLD_FD", "") or -1)


def _wait() -> None:
    """Block until the test releases the hold (once; later calls return at once)."""
    global _fd
    fd, _fd = _fd, -1
    if fd >= 0:
        try:
            os.read(fd, 1)
        finally:
            os.close(fd)


class _HoldTrio:
    """``pyinit -- CMD``: the first ``import trio`` waits."""

    def find_spec(self, name, path=None, target=None):
        if name == "trio":
            _wait()
        return None  # the normal import machinery goes on


def _held_between(between) -> None:
    """The container's PID 1: call ``between`` on every signal until released."""
    global _fd
    import select

    from pyinit import core
    from pyinit.linux import syscalls

    fd, _fd = _fd, -1
    pending = syscalls.signalfd(core.WATCHED)
    watch = select.poll()
    watch.register(fd, select.POLLIN)
    watch.register(pending, select.POLLIN)
    try:
        while True:
            between()  # forwards and reaps what is pending; may exit pyinit
            if any(ready == fd for ready, _ in watch.poll()):
                return
    finally:
        os.close(pending)
        os.close(fd)


def _patch_memimport(module) -> None:
    real = module.Bundle.exec_module

    def exec_module(self, mod):
        if mod.__name__ == "trio" and _fd >= 0 and self.between is not None:
            _held_between(self.between)
        real(self, mod)

    module.Bundle.exec_module = exec_module


def _patch_task(module) -> None:
    real = module.close_from

    def close_from(start, keep):
        real(start, keep | {_fd} if _fd >= 0 else keep)

    module.close_from = close_from


class _AfterImport:
    """Patch a module of pyinit right after it has run (found by the other finders)."""

    patches = {"pyinit.memimport": _patch_memimport,
               "pyinit.linux.task": _patch_task}

    def find_spec(self, name, path=None, target=None):
        patch = self.patches.get(name)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        real = spec.loader.exec_module

        def exec_module(module):
            real(module)
            patch(module)

        spec.loader.exec_module = exec_module
        return spec


if _fd >= 0:
    sys.meta_path[:0] = [_HoldTrio(), _AfterImport()]
