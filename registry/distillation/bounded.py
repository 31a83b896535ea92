"""sympy's simplify with a time bound, in any thread.

simplify can take a minute on a forty-node candidate (trigsimp factoring a polynomial
in cos θ), and a budget is a promise. In the main thread (the CLI, a benchmark run
serially) the bound is a SIGALRM timer. Elsewhere (a Dask worker runs its tasks in a
thread of its own) a timer thread raises the timeout in the simplifying thread
(`PyThreadState_SetAsyncExc`): sympy is pure Python, so it lands at the next bytecode.
The timeout derives from BaseException, so that sympy's own `except Exception` does not
swallow it; a timeout that fires as simplify returns is cleared under a lock, never
left pending for the caller's code."""

from __future__ import annotations

import ctypes
import signal
import threading
import time
from typing import Any

import sympy

__all__ = ["SIMPLIFY_MAX_S", "bounded_simplify"]

SIMPLIFY_MAX_S = 30.0  # without a deadline; one simplify took 60 s on a Lorentz candidate


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
    def alarm(signum: int, frame: Any) -> None:
        raise _SimplifyTimeout

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return sympy.simplify(expr)
    except _SimplifyTimeout:
        return None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _with_timer_thread(expr: sympy.Expr, limit: float) -> sympy.Expr | None:
    target = ctypes.c_ulong(threading.get_ident())
    lock = threading.Lock()
    state = {"done": False, "fired": False}

    def fire() -> None:
        with lock:
            if not state["done"]:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(target,
                                                           ctypes.py_object(_SimplifyTimeout))
                state["fired"] = True

    timer = threading.Timer(limit, fire)
    timer.daemon = True
    try:
        timer.start()
        try:
            return sympy.simplify(expr)
        finally:
            with lock:
                state["done"] = True
                if state["fired"]:  # raised already, or still pending: clear it
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(target, None)
            timer.cancel()
    except _SimplifyTimeout:
        return None
