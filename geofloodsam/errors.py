"""User-facing errors: one line naming the problem and the fix, never a traceback.

``GeofloodsamError`` subclasses :class:`click.ClickException`, so the CLI prints
``Error: <message>`` and exits with status 1 without a traceback, while library
callers get an ordinary exception. :func:`catching_stop_signals` turns SIGINT and SIGTERM into
:class:`Interrupted`, the same for both, so that a stopped run cleans up as on an error;
:func:`check_interrupted` is the check long runs make between steps.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

import click


class GeofloodsamError(click.ClickException):
    """A problem with the user's input or environment, with a hint on how to fix it."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def distinct_choices(values, choices, what: str) -> list[str]:
    """``values`` without repeats, in their order; a one-line error for an unknown one, or
    for none at all (``what``: e.g. ``prompt type``, named in the message)."""
    values = list(dict.fromkeys(values))
    bad = [v for v in values if v not in choices]
    if bad or not values:
        raise GeofloodsamError(
            f"unknown {what} {bad[0] if bad else '(none given)'}: use one or more of "
            f"{', '.join(choices)}."
        )
    return values


# --------------------------------------------------------------------------- stop signals
class Interrupted(SystemExit):
    """Raised in the main thread on SIGINT (Ctrl-C) or SIGTERM: ``finally`` clean-up runs, then
    the process exits with ``128 + signal`` (130 for SIGINT, 143 for SIGTERM).

    A :class:`SystemExit`, so ``except Exception`` never swallows it.
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(128 + self.signum)

    @property
    def message(self) -> str:
        """The one line the command line prints for it."""
        what = ("interrupted (SIGINT, Ctrl-C)" if self.signum == signal.SIGINT
                else f"terminated ({signal.Signals(self.signum).name})")
        return (f"Error: {what}: stopped and cleaned up; no output of the unfinished work was "
                "written and earlier outputs were left as they were.")


#: the stop signal received under :func:`catching_stop_signals`, if any
_received: int | None = None
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _on_stop_signal(signum, frame) -> None:
    global _received
    for sig in STOP_SIGNALS:  # a second Ctrl-C or SIGTERM must not cut the clean-up short
        signal.signal(sig, signal.SIG_IGN)
    _received = signum
    raise Interrupted(signum)


def check_interrupted() -> None:
    """Raise :class:`Interrupted` if a stop signal came in: for the points where a run must
    not go on (before each tile, before outputs are renamed into place), in case the signal's
    exception was raised inside native code that swallowed it."""
    if _received is not None:
        raise Interrupted(_received)


@contextlib.contextmanager
def catching_stop_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into :class:`Interrupted` inside the block (main thread only;
    elsewhere a no-op); the previous handlers are restored after it."""
    global _received
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received = None
    ensure_signal_stack()
    previous = {sig: signal.signal(sig, _on_stop_signal) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _received = None


@contextlib.contextmanager
def children_ignore_sigint() -> Iterator[None]:
    """Processes started inside the block ignore SIGINT, for good.

    Ctrl-C in a terminal reaches its whole process group: helper processes (a local Dask
    cluster's workers) must leave stopping to this process, which closes them, instead of
    each printing a ``KeyboardInterrupt`` traceback. Only an ignored disposition survives the
    ``exec`` of a spawned Python, so SIGINT is ignored here for the block's duration (a
    Ctrl-C in it is lost; SIGTERM still stops the run). A no-op outside the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


#: the alternate signal stack :func:`ensure_signal_stack` gives the main thread, kept for good
_SIGNAL_STACK: tuple | None = None


def ensure_signal_stack() -> None:
    """Give the calling thread an alternate signal stack that lives as long as the process.

    Python runs its signal handlers on the thread's alternate stack when one is set. OpenVINO
    sets one for the main thread while loading and frees its memory with its last object,
    leaving it registered: the next Ctrl-C in that process would then crash (SIGSEGV)
    instead of stopping cleanly. Called when stop signals are caught and after OpenVINO
    loads. Linux only (the ``stack_t`` layout); a no-op elsewhere or on any failure.
    """
    global _SIGNAL_STACK
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        class _Stack(ctypes.Structure):
            _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int),
                        ("ss_size", ctypes.c_size_t)]

        libc = ctypes.CDLL(None)
        if _SIGNAL_STACK is None:
            memory = ctypes.create_string_buffer(1 << 18)
            _SIGNAL_STACK = (memory, _Stack(ctypes.addressof(memory), 0, len(memory)))
        current = _Stack()
        if libc.sigaltstack(None, ctypes.byref(current)) != 0:
            return
        on_it = current.ss_flags & 1  # SS_ONSTACK: a handler runs on it now
        if on_it or current.ss_sp == _SIGNAL_STACK[1].ss_sp:
            return
        libc.sigaltstack(ctypes.byref(_SIGNAL_STACK[1]), None)
    except (OSError, AttributeError, ValueError):
        return
