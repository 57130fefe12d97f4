"""A child of ``lib/proc/child.py`` for its tests: answers each request as it says.

    Child(echo_child.__file__, args, name)

Requests are ``(what, value)``: ``echo`` answers ``value``; ``describe`` answers how the child
runs (its args, site flag, path, SIGINT handler); ``fail`` fails with the exception ``value``;
``unpicklable`` fails with an exception that does not pickle; ``exit`` exits with code
``value`` without answering; ``half`` sends ``value`` bytes of a frame of 100 and exits;
``sleep`` sleeps ``value`` seconds, then answers it.
"""

import os
import signal
import sys
import time

from azaion_assets.lib.proc import child


class _Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("holds a lock")
        self.held = lambda: None  # a lambda does not pickle


def _main() -> None:
    answers, args = child.start()
    for what, value in child.requests():
        if what == "echo":
            child.answer(answers, value)
        elif what == "describe":
            ignores_ctrl_c = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
            child.answer(answers, (args, sys.flags.no_site, sys.path[:2], ignores_ctrl_c))
        elif what == "fail":
            child.fail(answers, value, lambda what: RuntimeError(f"echo failed: {what}"))
            return
        elif what == "unpicklable":
            child.fail(answers, _Unpicklable(), lambda what: RuntimeError(f"echo failed: {what}"))
            return
        elif what == "exit":
            os._exit(value)
        elif what == "half":
            answers.sendall(child._HEADER.pack(100) + b"x" * value)
            os._exit(0)
        elif what == "sleep":
            time.sleep(value)
            child.answer(answers, value)


if __name__ == "__main__":
    _main()
