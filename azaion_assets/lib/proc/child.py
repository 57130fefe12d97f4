"""A light child process of this very package, and the frames it and its parent exchange.

Why: some work must run beside the caller, on an interpreter of its own (the stream reader, the
dataset's link helper), and start in a few tens of milliseconds. The child is a bare
``python -P <module's file>`` (``-S`` too when it needs nothing from site-packages) with
this package's root first on its path, so it runs this very code. A ``multiprocessing``
spawn child would re-import the caller's ``__main__`` (Dagster, a benchmark) and this package's
dependencies; ``fork`` is unsafe in a multi-threaded caller; ``-m`` would cost ``runpy``'s
imports. The child's side of this module imports a few small standard modules only.

The protocol, all pickles:

- parent to child, on the child's stdin: requests, in order. The end of stdin means the parent
  is done or gone.
- child to parent, on a Unix socket of its own (stdout stays free for stray prints): answers,
  each a frame of an 8-byte length and a pickle. The parent receives a frame with one
  ``MSG_WAITALL`` call: its thread then needs the GIL once a frame, not once per piece written.
  A child that fails sends its exception instead, which ``Child.receive`` raises, and nothing
  after it.

The child never outlives its parent: ``PR_SET_PDEATHSIG`` kills it when the parent's thread
that started it ends, a write to a socket nobody reads ends it, and ``Child.close`` ends and
reaps it in every other case.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import struct
import sys
from collections.abc import Callable, Iterator, Sequence

TYPE_CHECKING = False  # not ``typing``'s: the child starts faster without importing it
if TYPE_CHECKING:
    from typing import Any

_HEADER = struct.Struct("<Q")  # the length of the pickle that follows
_SOCKET_BYTES = 1 << 20  # the child's send buffer (the kernel's default is about 200 KB)
_PR_SET_PDEATHSIG = 1  # Linux prctl
_CLOSE_GRACE = 5.0  # seconds a child gets to exit once its stdin is closed


class _Failure:
    """What a failed child sends: the error for ``Child.receive`` to raise."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


# -- the parent's side ------------------------------------------------------------------------


class Child:
    """``python -P script <parent pid> <socket fd> *args`` as a child; ``close`` it once.

    ``script`` is a module of this package (its ``__file__``), run as ``__main__``; ``name``
    says who failed in the ``error`` raised when the child ends without an answer.
    """

    def __init__(
        self,
        script: str,
        args: Sequence[str],
        name: str,
        error: Callable[[str], Exception] = RuntimeError,
        site: bool = True,
    ) -> None:
        import subprocess  # here: the child's side starts faster without it

        self._name, self._error = name, error
        self._answers, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BYTES)
            flags = ["-P"] if site else ["-P", "-S"]
            command = [sys.executable, *flags, script, str(os.getpid()), str(theirs.fileno())]
            self._proc = subprocess.Popen(
                [*command, *args],
                stdin=subprocess.PIPE,
                pass_fds=(theirs.fileno(),),
                env=same_package_env(),
            )
        except BaseException:
            self._answers.close()
            raise
        finally:
            theirs.close()  # the child's now: its exit is our end of file
        assert self._proc.stdin is not None
        self._requests = self._proc.stdin

    @property
    def pid(self) -> int:
        return self._proc.pid

    def alive(self) -> bool:
        """Whether the child is still running (not reaped: ``close`` still must be called)."""
        return self._proc.poll() is None

    def send(self, request: Any) -> None:
        """Hand ``request`` to the child; OSError if it is gone (``receive`` then says how)."""
        pickle.dump(request, self._requests, pickle.HIGHEST_PROTOCOL)
        self._requests.flush()

    def end_input(self) -> None:
        """Close the child's stdin: its cue that no request follows."""
        try:  # noqa: SIM105 (not ``contextlib.suppress``: the child starts faster without it)
            self._requests.close()
        except OSError:
            pass  # the child is gone already

    def receive(self, timeout: float | None = None) -> Any:
        """The child's next answer; raises what the child sent instead, or ``error`` if it
        ended without an answer, or ``TimeoutError`` after ``timeout`` seconds without one
        (the frame is then lost: the caller must end the child)."""
        self._answers.settimeout(timeout)
        try:
            header = self._receive_exactly(_HEADER.size)
        finally:
            self._answers.settimeout(None)
        if header is None:
            code = self._proc.wait()
            raise self._error(f"{self._name} ended early (exit code {code})")
        body = self._receive_exactly(_HEADER.unpack(header)[0])
        if body is None:
            raise self._error(f"{self._name} sent a header without its frame")
        answer = pickle.loads(body)
        if isinstance(answer, _Failure):
            raise answer.error
        return answer

    def _receive_exactly(self, size: int) -> bytearray | None:
        """``size`` bytes into one buffer; None at end of file before the first byte.

        One ``MSG_WAITALL`` receive waits for the whole frame in the kernel: this thread then
        needs the GIL once a frame, not once per piece the child has written so far, and each
        time it may wait up to the switch interval (5 ms) for another thread to let go of it.
        """
        buffer = bytearray(size)
        view = memoryview(buffer)
        done = 0
        while done < size:  # short only at end of file or on a signal
            got = self._answers.recv_into(view[done:], size - done, socket.MSG_WAITALL)
            if got == 0:
                if done == 0:
                    return None
                raise self._error(f"{self._name} sent {done} of {size} bytes")
            done += got
        return buffer

    def kill(self) -> None:
        self._proc.kill()

    def close(self, kill: bool) -> None:
        """End the child (at the end of its input, or killed if ``kill``) and reap it: no
        zombie is left. One that is still running after a grace period is killed."""
        self.end_input()
        if kill:
            self._proc.kill()
        if not self._hung_up(_CLOSE_GRACE):
            self._proc.kill()
        self._proc.wait()
        self._answers.close()

    def _hung_up(self, grace: float) -> bool:
        """Whether the child closes its end of the socket, as it does when it exits, within
        about ``grace`` seconds. Unlike ``Popen.wait(timeout)``, which polls with growing
        sleeps, this returns as soon as it happens. Unread answers are dropped."""
        self._answers.settimeout(grace)
        try:
            while self._answers.recv(1 << 16):
                pass
        except TimeoutError:
            return False
        except OSError:
            pass  # e.g. reset by a killed child: gone all the same
        return True


def same_package_env() -> dict[str, str]:
    """The environment, with this package's root first on the child's path: the child must run
    this very code (``-P`` keeps the working directory off its path, where another checkout of
    the package may be)."""
    root = os.path.realpath(__file__).rsplit(os.sep, 4)[0]  # above azaion_assets/lib/proc/
    rest = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, rest] if rest else [root])}


# -- the child's side -------------------------------------------------------------------------


def start() -> tuple[socket.socket, list[str]]:
    """In the child, first: be killed with the parent, leave Ctrl-C to it (it reaches the parent
    too); return the socket for the answers and the ``args`` given to ``Child``."""
    parent, fd, *args = sys.argv[1:]
    _die_with_parent(int(parent))
    answers = socket.socket(fileno=int(fd))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return answers, args


def request() -> Any:
    """The parent's next request; EOFError at the end of input."""
    return pickle.load(sys.stdin.buffer)


def requests() -> Iterator[Any]:
    """The parent's requests, in order, until the end of input."""
    while True:
        try:
            yield request()
        except EOFError:
            return


def answer(answers: socket.socket, value: Any) -> None:
    """Send ``value`` to the parent. Blocks while the parent's side is full: that is the
    backpressure that keeps memory flat. Exits at once if nobody reads: the parent is gone."""
    data = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    try:
        answers.sendall(_HEADER.pack(len(data)))
        answers.sendall(data)
    except (BrokenPipeError, ConnectionResetError):  # not a raise: a library that calls this
        os._exit(1)  # from a callback may only log it and go on (rstream does)


def fail(answers: socket.socket, exc: BaseException, fallback: Callable[[str], Exception]) -> None:
    """Send ``exc`` for the parent's ``receive`` to raise, or ``fallback(description)`` if it
    does not pickle. Nothing may be sent after it."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        exc = fallback(f"{type(exc).__name__}: {exc}")
    answer(answers, _Failure(exc))


def _die_with_parent(parent: int) -> None:
    """Be killed when the parent dies, and exit now if it died before this was set."""
    import ctypes  # here: only the child needs it

    try:  # noqa: SIM105 (see ``Child.end_input``)
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the end of stdin still ends the child
    if os.getppid() != parent:
        os._exit(1)
