"""Stopping on request: Ctrl-C (SIGINT), ``kill`` / docker / Kubernetes / SLURM (SIGTERM),
a closed terminal (SIGHUP).

The first signal asks training to stop after the current iteration: the run
finishes it, writes a checkpoint of it and exits with status 128 + the signal
number (130, 143, 129). An iteration that has not finished within
``grace_s`` seconds of the signal (:data:`DEFAULT_GRACE_S`, below Kubernetes'
default 30 s termination grace period; ``TRPO_TF_STOP_GRACE_S`` changes it) is
abandoned instead, keeping the newest checkpoint already written. A second
signal abandons the iteration at once. Abandoning raises :class:`Stopped` in the
main thread; checkpoint writes are atomic, so an abandoned write leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

DEFAULT_GRACE_S = 20.0
GRACE_ENV = "TRPO_TF_STOP_GRACE_S"
HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """Training stopped on a signal; ``exit_status`` is 128 + its number."""

    def __init__(self, signum: int = signal.SIGINT, abandoned: bool = True) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.abandoned = abandoned

    @property
    def exit_status(self) -> int:
        return 128 + int(self.signum)


def grace_seconds() -> float:
    """How long a stop request waits for the current iteration (seconds)."""
    try:
        return max(0.0, float(os.environ.get(GRACE_ENV, DEFAULT_GRACE_S)))
    except ValueError:
        return DEFAULT_GRACE_S


class StopRequests:
    """Installs the handlers for the duration of a run (main thread only).

    Attributes:
        signum: the first signal received (None: none yet).
    """

    def __init__(self, grace_s: float | None = None) -> None:
        self.signum: int | None = None
        self.grace_s = grace_seconds() if grace_s is None else grace_s
        self._deadline_passed = False
        self._timer: threading.Timer | None = None
        self._previous: dict[int, Any] = {}
        # Re-entrant: a handler runs in the main thread between two bytecodes, so a
        # second signal can land while the main thread holds this lock (inside
        # settled(), or the first handler); with a plain lock that handler would wait
        # for itself forever, and so would the deadline's thread.
        self._lock = threading.RLock()

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self.settled()
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self._deadline_passed:  # the deadline's simulated SIGINT (see _deadline)
            raise Stopped(self.signum or signum, abandoned=True)
        if self.signum is not None:  # a second signal: stop now
            self.settled()
            raise Stopped(signum, abandoned=True)
        self.signum = signum
        name = signal.Signals(signum).name
        print(
            f"\ntrpo-tf: {name} received: stopping after this iteration (at most "
            f"{self.grace_s:g} s), then writing a checkpoint; send it again to stop now",
            file=sys.stderr,
            flush=True,
        )
        timer = threading.Timer(self.grace_s, self._deadline)
        timer.daemon = True
        with self._lock:
            self._timer = timer
        # Started outside the lock: Thread.start waits for the thread, and a second
        # signal handled during that wait cancels this timer (settled) and stops.
        timer.start()

    def _deadline(self) -> None:
        """The iteration outlasted the grace period: abandon it in the main thread.

        A real SIGINT sent to the main thread interrupts a blocking call there (a
        sleep, a wait on a worker's pipe) and runs ``_handle``, which raises
        :class:`Stopped` in it.
        """
        with self._lock:
            if self._timer is None:
                return
            self._timer = None
            self._deadline_passed = True
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    def settled(self) -> None:
        """The iteration ended: no more abandoning by deadline (the checkpoint follows)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def stopped(self, abandoned: bool) -> Stopped:
        """The exception that ends the run for the received signal."""
        return Stopped(self.signum or signal.SIGINT, abandoned=abandoned)
