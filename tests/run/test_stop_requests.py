"""StopRequests when signals arrive on top of each other (no training: the handler alone).

A handler runs in the main thread between two bytecodes, so a second signal can be
handled while the main thread is still inside the first handler or inside
``settled()``. Each test makes that interleaving happen on purpose and checks that
the second signal stops at once instead of waiting on the handler's own lock.
"""

from __future__ import annotations

import signal
import threading

import pytest

from trpo_tf.run.signals import Stopped, StopRequests

JOIN_S = 10.0


def _in_thread(action) -> dict:
    """Run ``action`` in a thread that must end within JOIN_S (a deadlock would not)."""
    outcome: dict = {}

    def run() -> None:
        try:
            action()
        except Stopped as stopped:
            outcome["stopped"] = stopped

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(JOIN_S)
    assert not thread.is_alive(), "the second signal waited on the stop lock forever"
    return outcome


def test_a_second_signal_while_the_first_starts_its_deadline_stops_at_once(monkeypatch) -> None:
    requests = StopRequests(grace_s=60.0)
    start = threading.Timer.start

    def start_then_second_signal(timer: threading.Timer) -> None:
        start(timer)
        requests._handle(signal.SIGTERM, None)  # lands while the first handler runs

    monkeypatch.setattr(threading.Timer, "start", start_then_second_signal)
    outcome = _in_thread(lambda: requests._handle(signal.SIGINT, None))
    stopped = outcome["stopped"]
    assert stopped.abandoned and stopped.exit_status == 128 + signal.SIGTERM
    assert requests.signum == signal.SIGINT  # the first signal is still the request
    assert requests._timer is None  # the deadline was cancelled: it never fires


def test_a_second_signal_while_the_loop_settles_stops_at_once() -> None:
    requests = StopRequests(grace_s=60.0)
    requests._handle(signal.SIGINT, None)
    timer = requests._timer
    assert timer is not None and timer.is_alive()

    def settling_when_the_second_signal_lands() -> None:
        with requests._lock:  # as inside settled()
            requests._handle(signal.SIGHUP, None)

    outcome = _in_thread(settling_when_the_second_signal_lands)
    assert outcome["stopped"].exit_status == 128 + signal.SIGHUP
    timer.join(JOIN_S)
    assert not timer.is_alive() and requests._timer is None


def test_the_deadline_abandons_the_iteration_once_the_grace_period_passes(monkeypatch) -> None:
    requests = StopRequests(grace_s=0.05)
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(signal, "pthread_kill", lambda ident, signum: sent.append((ident, signum)))
    requests._handle(signal.SIGTERM, None)
    requests._timer.join(JOIN_S)
    assert sent == [(threading.main_thread().ident, signal.SIGINT)]
    # The simulated SIGINT that follows ends the iteration as the first signal's stop.
    with pytest.raises(Stopped) as stopped:
        requests._handle(signal.SIGINT, None)
    assert stopped.value.exit_status == 128 + signal.SIGTERM and stopped.value.abandoned
