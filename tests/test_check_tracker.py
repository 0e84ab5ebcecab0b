"""check_tracker: the conformance check for trpo_tf.trackers factories."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import trpo_tf.testing
from trpo_tf.testing import check_tracker


class JsonlTracker:
    """A working tracker: one JSON line per row, then the summary."""

    def __init__(self, run_dir: Path, every: int) -> None:
        self.path = Path(run_dir) / "rows.jsonl"
        self.every = every
        self.steps: list[int] = []
        self.finished_in: Path | None = None

    def log(self, row, step):
        self.steps.append(step)
        with open(self.path, "a") as handle:
            handle.write(json.dumps({"step": step, **row}) + "\n")

    def finish(self, summary, run_dir):
        assert math.isfinite(summary["steps_per_s"])
        self.finished_in = Path(run_dir)


def make_jsonl(run_dir, experiment, every=1):
    assert isinstance(experiment, dict) and experiment["name"]
    return JsonlTracker(run_dir, every)


def test_exported() -> None:
    assert "check_tracker" in trpo_tf.testing.__all__


def test_a_working_tracker_passes_with_keyword_arguments(tmp_path) -> None:
    tracker = check_tracker(make_jsonl, run_dir=tmp_path, every=2)
    assert tracker.every == 2 and tracker.steps == [512, 1024, 1536]
    assert tracker.finished_in == tmp_path
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert [row["iteration"] for row in rows] == [0, 1, 2]
    assert "eval_return" in rows[1] and "eval_return" not in rows[0]
    check_tracker(make_jsonl)  # a temporary directory by default


def _positional(path, config):  # names trpo_tf does not pass
    return JsonlTracker(path, 1)


class _NoFinish:
    def log(self, row, step):
        pass


class _LogRaises(JsonlTracker):
    def log(self, row, step):
        raise ValueError("cannot serialize bool")


class _FinishRaises(JsonlTracker):
    def finish(self, summary, run_dir):
        raise KeyError("final_return")


@pytest.mark.parametrize(
    ("factory", "kwargs", "match"),
    [
        (_positional, {}, r"raised TypeError.*passes run_dir and experiment by keyword"),
        (make_jsonl, {"evry": 2}, r"\*\*\{'evry': 2\}\) raised TypeError"),
        (lambda run_dir, experiment: _NoFinish(), {}, r"_NoFinish without finish\(\)"),
        (lambda run_dir, experiment: JsonlTracker, {}, r"returned the class JsonlTracker"),
        (lambda run_dir, experiment: _LogRaises(run_dir, 1), {}, r"log\(row, step=512\) raised"),
        (
            lambda run_dir, experiment: _FinishRaises(run_dir, 1),
            {},
            r"finish\(summary, run_dir\) raised KeyError",
        ),
    ],
    ids=["positional-names", "unknown-kwarg", "no-finish", "class", "log-raises", "finish-raises"],
)
def test_catches(factory, kwargs, match) -> None:
    with pytest.raises(AssertionError, match=match) as info:
        check_tracker(factory, **kwargs)
    assert str(info.value).startswith("check_tracker(")
