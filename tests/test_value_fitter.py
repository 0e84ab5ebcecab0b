"""ValueFitter: ordered background work, errors surfaced at wait(), clean shutdown."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from trpo_tf.value_fitter import ValueFitter


class _FakeUpdate:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def value_update(self, observations: np.ndarray, targets: np.ndarray) -> None:
        time.sleep(0.01)  # long enough for the caller to run ahead
        self.calls.append((threading.current_thread().name, int(targets[0])))

    def prepare_value_fit(self) -> None:
        time.sleep(0.3)
        self.calls.append((threading.current_thread().name, -1))


def test_fits_run_in_order_in_one_background_thread_and_wait_blocks() -> None:
    update = _FakeUpdate()
    fitter = ValueFitter(update, overlap=True)
    done: list[int] = []
    for k in range(3):
        fitter.launch(np.zeros((2, 1)), np.full(2, k))  # waits for the previous fit
        fitter.then(lambda k=k: done.append(k))
    fitter.wait()
    assert [target for _, target in update.calls] == [0, 1, 2]
    assert {name for name, _ in update.calls} == {"value-fit"}
    assert done == [0, 1, 2]
    worker = next(t for t in threading.enumerate() if t.ident == fitter._worker.ident)
    fitter.close()
    assert not worker.is_alive()


def test_an_error_is_raised_by_wait_and_skips_the_queued_tasks() -> None:
    fitter = ValueFitter(_FakeUpdate(), overlap=True)
    after: list[str] = []

    def fail() -> None:
        raise RuntimeError("fit diverged")

    fitter.then(fail)
    fitter.then(lambda: after.append("ran"))
    with pytest.raises(RuntimeError, match="fit diverged"):
        fitter.wait()
    assert after == []
    fitter.then(lambda: after.append("ran"))  # usable again after the error was reported
    fitter.wait()
    assert after == ["ran"]
    fitter.close()


def test_without_overlap_work_runs_inline() -> None:
    update = _FakeUpdate()
    fitter = ValueFitter(update, overlap=False)
    fitter.launch(np.zeros((2, 1)), np.full(2, 7))
    assert update.calls == [(threading.current_thread().name, 7)]
    fitter.close()


def test_wait_does_not_wait_for_prepare_but_the_first_fit_queues_behind_it() -> None:
    update = _FakeUpdate()
    fitter = ValueFitter(update, overlap=True)
    fitter.prepare()
    start = time.perf_counter()
    fitter.wait()  # only the state-free build is queued: nothing to wait for
    assert time.perf_counter() - start < 0.2
    assert update.calls == []
    fitter.launch(np.zeros((2, 1)), np.full(2, 4))
    fitter.wait()
    assert update.calls == [("value-fit", -1), ("value-fit", 4)]
    fitter.close()


def test_without_overlap_prepare_does_nothing() -> None:
    update = _FakeUpdate()
    fitter = ValueFitter(update, overlap=False)
    fitter.prepare()
    assert update.calls == []
