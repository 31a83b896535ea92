"""sympy's simplify with a time bound, in any thread.

simplify can take a minute on a forty-node candidate (trigsimp factoring a polynomial
in cos θ), and a budget is a promise. In the main thread (the CLI, a benchmark run
serially) the bound is a SIGALRM timer. Elsewhere (a Dask worker runs its tasks in a
thread of its own) a timer thread raises the timeout in the simplifying thread
(`PyThreadState_SetAsyncExc`): sympy is pure Python, so it lands at the next bytecode.
The timeout derives from BaseException, so that sympy's own `except Exception` does not
swallow it; a timeout that fires as simplify returns is cleared under a lock, never
left pending for the caller's code. An exception raised while the interpreter runs a
callback of its own (a garbage-collection callback, as Dask's GC diagnosis installs) is
printed and dropped ("Exception ignored in ..."), so the timeout is raised again every
REFIRE_S until simplify has stopped: one swallowed timeout once let a 60 s budget run
for an hour."""

from __future__ import annotations

import ctypes
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import sympy

__all__ = ["SIMPLIFY_MAX_S", "bounded_simplify"]

SIMPLIFY_MAX_S = 30.0  # without a deadline; one simplify took 60 s on a Lorentz candidate
REFIRE_S = 0.2  # a timeout swallowed by a callback is raised again after this long


class _SimplifyTimeout(BaseException):
    pass


def bounded_simplify(expr: sympy.Expr, deadline: float | None = None, *,
                     limit_s: float = SIMPLIFY_MAX_S) -> sympy.Expr | None:
    """`sympy.simplify(expr)`, or None when it takes longer than is left before `deadline`
    (without one, than `limit_s`): a simplify that needs 3 s of a budget's last 10 gets
    them, one that would take a minute past it is cut off, in whichever thread it runs."""
    limit = limit_s if deadline is None else deadline - time.monotonic()
    if limit <= 0:
        return None
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        return _with_alarm(expr, limit)
    return _with_timer_thread(expr, limit)


def _with_alarm(expr: sympy.Expr, limit: float) -> sympy.Expr | None:
    done = False

    def alarm(signum: int, frame: Any) -> None:
        if not done:
            raise _SimplifyTimeout

    def settle() -> None:
        nonlocal done
        done = True

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, limit, REFIRE_S)  # and again, until cleared
    try:
        try:
            return sympy.simplify(expr)
        finally:
            _settled(settle)
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    except _SimplifyTimeout:
        return None


def _with_timer_thread(expr: sympy.Expr, limit: float) -> sympy.Expr | None:
    target = ctypes.c_ulong(threading.get_ident())
    lock = threading.Lock()
    state = {"done": False, "fired": False}
    stop = threading.Event()

    def fire() -> None:
        wait = limit
        while not stop.wait(wait):  # raised again until simplify has stopped
            with lock:
                if state["done"]:
                    return
                ctypes.pythonapi.PyThreadState_SetAsyncExc(target,
                                                           ctypes.py_object(_SimplifyTimeout))
                state["fired"] = True
            wait = REFIRE_S

    def settle() -> None:
        with lock:  # no raise after this: the firing thread checks `done` under the lock
            state["done"] = True
            if state["fired"]:  # raised already, or still pending: clear it
                ctypes.pythonapi.PyThreadState_SetAsyncExc(target, None)

    timer = threading.Thread(target=fire, name="bounded-simplify", daemon=True)
    try:
        timer.start()
        try:
            return sympy.simplify(expr)
        finally:
            _settled(settle)
            stop.set()
    except _SimplifyTimeout:
        return None


def _settled(mark_done: Callable[[], None]) -> None:
    """Run `mark_done` to its end even when a timeout raised just before it lands inside
    it: after it no timeout is raised, so none can escape to the caller's code."""
    while True:
        try:
            mark_done()
            return
        except _SimplifyTimeout:
            continue
