# The C half of the signal module, which typeshed does not describe. pyinit
# uses it on the start-up path because ``import signal`` pulls in enum.
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

_Handler = Callable[[int, FrameType | None], Any] | int | None

SIG_DFL: int
SIG_IGN: int
SIG_BLOCK: int
SIG_UNBLOCK: int
SIG_SETMASK: int
SIGRTMIN: int
SIGRTMAX: int
SIGINT: int
SIGQUIT: int
SIGTERM: int
SIGPIPE: int
SIGXFSZ: int
SIGCHLD: int
SIGKILL: int
SIGSTOP: int
SIGSEGV: int
SIGBUS: int
SIGFPE: int
SIGILL: int

def pthread_sigmask(how: int, mask: Iterable[int], /) -> set[int]: ...
def valid_signals() -> set[int]: ...
def signal(signalnum: int, handler: _Handler, /) -> _Handler: ...
def getsignal(signalnum: int, /) -> _Handler: ...


class struct_siginfo:
    si_signo: int
    si_code: int
    si_errno: int
    si_pid: int
    si_uid: int
    si_status: int
    si_band: int

def sigtimedwait(sigset: Iterable[int], timeout: float, /) -> struct_siginfo | None: ...
def pthread_kill(thread_id: int, signalnum: int, /) -> None: ...
def __getattr__(name: str) -> int: ...
