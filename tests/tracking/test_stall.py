"""A run whose steps are all rejected says so once (the metrics alone are easy to miss)."""

from __future__ import annotations

from pathlib import Path

from trpo_tf.config import load_experiment
from trpo_tf.tracking.stall import StallWatch

CARTPOLE = Path(__file__).resolve().parents[2] / "experiments" / "cartpole.yaml"
REJECTED = {"line_search_accepted": False, "skip_reason": 0}
ACCEPTED = {"line_search_accepted": True, "skip_reason": 0}


def test_speaks_once_after_a_streak_of_rejections():
    watch = StallWatch(iterations=3)
    assert [watch.observe(REJECTED) for _ in range(2)] == [None, None]
    assert watch.observe(ACCEPTED) is None  # an accepted step resets the count
    assert [watch.observe(REJECTED) for _ in range(2)] == [None, None]
    message = watch.observe(REJECTED)
    assert message is not None and "3 iterations in a row" in message
    assert "line search rejected every step" in message and "max_kl" in message
    assert [watch.observe(REJECTED) for _ in range(5)] == [None] * 5


def test_skipped_updates_name_the_skip_reason():
    watch = StallWatch(iterations=2)
    watch.observe({"line_search_accepted": False, "skip_reason": 1})
    message = watch.observe({"line_search_accepted": False, "skip_reason": 1})
    assert message is not None and "skip_reason" in message


def test_held_out_skips_name_the_check_not_the_distribution():
    from trpo_tf.trainer.trpo import SKIP_NO_HELD_OUT_GAIN, SKIP_REASONS

    watch = StallWatch(iterations=2)
    row = {"line_search_accepted": False, "skip_reason": SKIP_REASONS[SKIP_NO_HELD_OUT_GAIN]}
    watch.observe(row)
    message = watch.observe(row)
    assert message is not None and "trainer.held_out_check" in message
    assert "distribution's KL" not in message


def test_training_prints_the_watch_message_once(tmp_path, capsys, monkeypatch):
    import trpo_tf.run.training as training_module
    from trpo_tf.train import train

    rows = []

    class EveryRowRejected(StallWatch):
        def observe(self, row):
            rows.append(row)
            return super().observe({**row, "line_search_accepted": False})

    monkeypatch.setattr(training_module, "StallWatch", lambda: EveryRowRejected(iterations=2))
    config = load_experiment(
        CARTPOLE,
        [
            "env.n_envs=2",
            "trainer.steps_per_iteration=128",
            "trainer.total_steps=512",  # 4 iterations
            "eval.every=1000",
            "eval.episodes=1",
            "checkpoint.every=0",
            "tracking.tensorboard=false",
        ],
    )
    train(config, tmp_path / "run", progress_every=1000)
    err = capsys.readouterr().err
    assert err.count("has not changed for 2 iterations in a row") == 1, err
    assert [row["iteration"] for row in rows] == [1, 2, 3, 4]
    assert all("line_search_accepted" in row for row in rows)
