"""A light child: it runs this very package, answers in order in whole frames, hands its errors
to the parent, and is always reaped."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from azaion_assets.lib.proc import child
from azaion_assets.lib.proc.child import Child
from azaion_assets_tests import echo_child
from azaion_assets_tests.processes import alive, ends_within

ECHO = echo_child.__file__
ROOT = str(Path(child.__file__).resolve().parents[3])


class _Failed(Exception):
    pass


def _gone(pid: int) -> bool:
    """Reaped: no process, not even a zombie."""
    return not Path(f"/proc/{pid}").exists()


def test_answers_come_whole_and_in_order():
    big = os.urandom(5 << 20)  # several times the socket's buffer: one frame, many pieces
    echo = Child(ECHO, [], "the echo child")
    try:
        for value in ["small", big, {"k": [1, 2]}, b""]:
            echo.send(("echo", value))
        assert [echo.receive() for _ in range(4)] == ["small", big, {"k": [1, 2]}, b""]
    finally:
        echo.close(kill=False)
    assert _gone(echo.pid)


@pytest.mark.parametrize("site", [True, False])
def test_the_child_runs_this_package_with_its_args(site, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    echo = Child(ECHO, ["a b", "2"], "the echo child", site=site)
    try:
        echo.send(("describe", None))
        args, no_site, path, ignores_ctrl_c = echo.receive()
    finally:
        echo.close(kill=False)
    assert args == ["a b", "2"] and no_site == (not site)
    assert path == [ROOT, "/elsewhere"] and ignores_ctrl_c


def test_an_error_in_the_child_is_raised_in_the_parent_and_ends_it():
    echo = Child(ECHO, [], "the echo child", error=_Failed)
    try:
        echo.send(("echo", 1))
        echo.send(("fail", FileExistsError(17, "File exists", "x.jpg")))
        assert echo.receive() == 1
        with pytest.raises(FileExistsError) as info:
            echo.receive()
        assert info.value.filename == "x.jpg"
        with pytest.raises(_Failed, match=r"the echo child ended early \(exit code 0\)"):
            echo.receive()  # nothing follows an error
    finally:
        echo.close(kill=False)


def test_an_unpicklable_error_arrives_as_the_fallback():
    echo = Child(ECHO, [], "the echo child")
    try:
        echo.send(("unpicklable", None))
        with pytest.raises(RuntimeError, match="echo failed: _Unpicklable: holds a lock"):
            echo.receive()
    finally:
        echo.close(kill=False)


def test_a_child_that_ends_without_answering_is_the_given_error():
    echo = Child(ECHO, [], "the echo child", error=_Failed)
    try:
        echo.send(("exit", 3))
        with pytest.raises(_Failed, match=r"the echo child ended early \(exit code 3\)"):
            echo.receive()
    finally:
        echo.close(kill=False)


@pytest.mark.parametrize(
    ("sent", "message"),
    [(0, "the echo child sent a header without its frame"), (5, "the echo child sent 5 of 100")],
)
def test_a_truncated_frame_is_the_given_error(sent, message):
    echo = Child(ECHO, [], "the echo child", error=_Failed)
    try:
        echo.send(("half", sent))
        with pytest.raises(_Failed, match=message):
            echo.receive()
    finally:
        echo.close(kill=False)


def test_closing_kills_a_busy_child_and_reaps_it():
    echo = Child(ECHO, [], "the echo child")
    echo.send(("sleep", 60))
    started = time.monotonic()
    echo.close(kill=True)
    assert time.monotonic() - started < 5
    assert _gone(echo.pid)


def test_closing_ends_an_idle_child_at_the_end_of_its_input():
    echo = Child(ECHO, [], "the echo child")
    echo.close(kill=False)
    assert echo._proc.returncode == 0  # it ended by itself, not by a signal


_KILLED_PARENT = """
import time
from azaion_assets.lib.proc.child import Child
from azaion_assets_tests import echo_child
echo = Child(echo_child.__file__, [], "the echo child")
echo.send(("sleep", 60))
print(echo.pid, flush=True)
time.sleep(60)
"""


def test_the_child_dies_with_its_parent():
    parent = subprocess.Popen(
        [sys.executable, "-c", _KILLED_PARENT], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    time.sleep(0.3)  # the child is up and sleeping
    assert alive(pid)
    parent.kill()
    parent.wait()
    assert ends_within(pid, 5)
