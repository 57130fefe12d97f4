"""Judge an image by decoding it, in a child process, within a time and a memory budget.

Why a process: decoding is C (libpng, libwebp, libtiff in OpenCV) that no thread can stop, and
hostile bytes make it slow or greedy: a 32 MB PNG of a million tiny chunks took 13 s and
288 MiB in the ingest's own process. Here the ingest lets the child spend
``STREAM_IMAGE_SECONDS`` of CPU on the answer (CPU, so that a busy machine does not refuse what a
quiet one accepts) and kills it past that; the child caps its own data segment (``RLIMIT_DATA``) at
``STREAM_IMAGE_MEMORY_MB`` past what it holds before each image. Either way the message is
quarantined with a reason naming the budget, and the next image gets a fresh child. The
ingest's own memory never holds a decode.

Plain JPEGs, nearly every frame, never come here (``image_door`` walks them in the ingest,
about 0.1 ms each). The child starts on the first image that needs it (about 0.3 s: Python,
NumPy, OpenCV, Pillow) and serves the rest of the partition.
"""

from __future__ import annotations

import os
import resource
import time

from azaion_assets.lib.proc import child
from azaion_assets.lib.stream.reject import Reject
from azaion_assets.lib.stream.trainer_reader import Judged, judge_decoded, memory_reason, sniffed

_START_SECONDS = 60.0  # the child's imports, on a loaded machine
_READY = "ready"
WALL_FACTOR = 4  # wall time an image may take, in budgets, when the machine starves the child
_SLICE = 0.05  # seconds between looks at the child's CPU time once its budget is nearly spent
_TICKS = os.sysconf("SC_CLK_TCK")


class JudgeError(RuntimeError):
    """The judge cannot be run at all (not a verdict on an image): the ingest run fails."""


class _OverBudget(Exception):
    """The child spent the time budget on one image."""


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used (``/proc/<pid>/stat``); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


class ImageJudge:
    """Judges images in a child process started on first use; ``close`` it once."""

    def __init__(self, seconds: float, memory: int) -> None:
        self.seconds, self.memory = seconds, memory
        self._child: child.Child | None = None
        self._ready = False
        self.started = 0  # children started: one, plus one after each image cut off

    def judge(self, image: bytes | bytearray, max_pixels: int, max_aspect: float) -> Judged:
        """``image`` judged by the trainer's reader (``trainer_reader.judge_decoded``); raises
        ``Reject`` with the reason, a budget's included."""
        judge = self._running()
        try:
            judge.send((bytes(image), max_pixels, max_aspect))
            answer = self._answer(judge)
        except _OverBudget as exc:
            self._replace()
            raise Reject(f"image over STREAM_IMAGE_SECONDS: {exc}") from None
        except (JudgeError, OSError) as exc:
            self._replace()
            raise Reject(f"image reader died judging it ({exc})") from None
        if isinstance(answer, str):
            raise Reject(answer)
        return answer

    def _answer(self, judge: child.Child) -> Judged | str:
        """The child's verdict once it spent at most ``seconds`` of CPU on it: CPU, not wall
        time, so a busy machine does not quarantine an image a quiet one accepts. A child that
        gets no CPU is still cut off at ``WALL_FACTOR`` times the budget of wall time."""
        start_cpu, start = _cpu_seconds(judge.pid), time.monotonic()
        while True:
            used = _cpu_seconds(judge.pid) - start_cpu
            if used >= self.seconds:
                raise _OverBudget(f"not judged within {self.seconds:g} s of CPU")
            if time.monotonic() - start >= self.seconds * WALL_FACTOR:
                waited = self.seconds * WALL_FACTOR
                raise _OverBudget(f"not judged within {waited:g} s ({used:.2f} s of CPU)")
            try:
                return judge.receive(timeout=max(self.seconds - used, _SLICE))
            except TimeoutError:
                continue  # the answer's header is 8 bytes written at once: nothing was read

    def _running(self) -> child.Child:
        """The child, started and ready (its imports done, not charged to an image). One that
        died between images (killed from outside) is replaced: no image is blamed for it."""
        if self._child is not None and not self._child.alive():
            self._end(kill=True)
        if self._child is None:
            self._spawn()
        assert self._child is not None
        if not self._ready:
            try:
                if self._child.receive(timeout=_START_SECONDS) != _READY:
                    raise JudgeError("the image judge did not start")
            except TimeoutError:
                self._end(kill=True)
                raise JudgeError(f"the image judge did not start in {_START_SECONDS:g} s") from None
            except BaseException:
                self._end(kill=True)
                raise
            self._ready = True
        return self._child

    def _spawn(self) -> None:
        self._child = child.Child(__file__, [str(self.memory)], "the image judge", JudgeError)
        self._ready, self.started = False, self.started + 1

    def _replace(self) -> None:
        """Kill the child (it is stuck, or gone) and start the next one now: it loads its
        libraries while the ingest goes on, not when the next image waits for it."""
        self._end(kill=True)
        self._spawn()

    def _end(self, kill: bool) -> None:
        if self._child is not None:
            self._child.close(kill=kill)
            self._child = None

    def close(self) -> None:
        self._end(kill=not self._ready)

    def __enter__(self) -> ImageJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the child's side -------------------------------------------------------------------------


def _main() -> None:
    answers, (memory,) = child.start()
    budget = int(memory)
    try:
        _warm()
    except BaseException as exc:
        child.fail(answers, exc, JudgeError)
        return
    child.answer(answers, _READY)
    quiet = os.open(os.devnull, os.O_WRONLY)
    for image, max_pixels, max_aspect in child.requests():
        _cap_data(budget)
        stderr = os.dup(2)
        os.dup2(quiet, 2)  # libpng warns of each hostile chunk on stderr, past OpenCV's logging
        try:
            verdict: Judged | str = judge_decoded(image, max_pixels, max_aspect, budget)
        except Reject as exc:
            verdict = str(exc)
        except MemoryError:
            verdict = memory_reason(sniffed(image), budget)
        except Exception as exc:  # a bug, not a verdict on the image: still one message
            verdict = f"image judge error: {type(exc).__name__}: {str(exc)[:120]}"
        finally:
            os.dup2(stderr, 2)
            os.close(stderr)
            del image
            _uncap_data()  # the next request is read whole, whatever this image left behind
        child.answer(answers, verdict)


def _warm() -> None:
    """Load OpenCV and Pillow's plugins now, so that neither their start nor their memory is
    charged to the first image; one thread, since one image is judged at a time."""
    os.environ["OPENCV_LOG_LEVEL"] = "SILENT"  # read when OpenCV loads
    import cv2
    from PIL import Image

    cv2.setNumThreads(1)
    Image.init()


def _cap_data(budget: int) -> None:
    """Let this process's data segment grow by ``budget`` bytes at most from now on: the
    image just received is already in it, the decode is not."""
    with open("/proc/self/status") as status:
        data = next(int(line.split()[1]) << 10 for line in status if line.startswith("VmData:"))
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    soft = data + budget
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def _uncap_data() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    resource.setrlimit(resource.RLIMIT_DATA, (hard, hard))


if __name__ == "__main__":
    _main()
