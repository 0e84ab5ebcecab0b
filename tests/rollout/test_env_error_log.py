"""The env-failure log: each kind once per batch, repeats counted in one line."""

from trpo_tf.rollout.env_error_log import EnvErrorLog, env_error_kind


def _failure(worker: int, env: int, what: str) -> str:
    return f"worker {worker}: env {env} raised {what} (episode step 3); env rebuilt"


def test_the_kind_drops_the_worker_the_env_and_the_rebuild_note():
    assert env_error_kind(_failure(1, 0, "ValueError: x")) == env_error_kind(
        _failure(0, 3, "ValueError: x")
    )
    assert env_error_kind(_failure(0, 0, "ValueError: x")) != env_error_kind(
        _failure(0, 0, "KeyError: y")
    )


def test_each_kind_is_logged_once_per_batch_and_repeats_are_summed_up():
    lines: list[str] = []
    log = EnvErrorLog(lines.append)
    log.record(0, _failure(0, 0, "ValueError: x"))
    log.record(1, _failure(1, 2, "ValueError: x"))
    log.record(1, _failure(1, 3, "KeyError: y"))
    log.record(0, _failure(0, 1, "ValueError: x"))
    assert lines == [_failure(0, 0, "ValueError: x"), _failure(1, 3, "KeyError: y")]
    log.end_batch()
    assert lines[-1] == "2 more env failures like the above in this batch"
    assert log.count == 4
    assert log.last_error == {0: _failure(0, 1, "ValueError: x"), 1: _failure(1, 3, "KeyError: y")}

    log.record(0, _failure(0, 0, "ValueError: x"))  # a new batch logs it again
    assert lines[-1] == _failure(0, 0, "ValueError: x")
    log.end_batch()  # no repeats: no summary line
    assert lines[-1] == _failure(0, 0, "ValueError: x")
    assert log.count == 5
