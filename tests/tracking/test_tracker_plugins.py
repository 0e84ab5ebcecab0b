"""Tracker plug-ins selected from YAML (``tracking.plugins``): built, fed, isolated."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import warnings
from pathlib import Path

import pytest

from trpo_tf import registry
from trpo_tf.config import experiment_from_dict
from trpo_tf.errors import ConfigError, RegistryError
from trpo_tf.tracking import build_trackers
from trpo_tf.tracking.safe import TrackingWarning

RECORDER = """
calls = []


class Recorder:
    def __init__(self, run_dir, experiment, tag, fail=False):
        self.tag, self.fail = tag, fail
        calls.append(("init", str(run_dir), experiment["name"], tag))

    def log(self, row, step):
        if self.fail:
            raise ConnectionError("tracking server unreachable")
        calls.append(("log", int(row["iteration"]), step))

    def finish(self, summary, run_dir):
        calls.append(("finish", summary["env_steps"], str(run_dir)))


def make_recorder(run_dir, experiment, tag="none", fail=False):
    return Recorder(run_dir, experiment, tag, fail)


def make_not_a_tracker(run_dir, experiment):
    return object()
"""


@pytest.fixture
def recorder(tmp_path, monkeypatch):
    """The module ``tracker_recorder`` registered as tracker plug-ins ``recorder``/``bad``."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "tracker_recorder.py").write_text(RECORDER)
    monkeypatch.syspath_prepend(str(code))
    importlib.invalidate_caches()
    real = registry._entry_points
    extra = [
        importlib.metadata.EntryPoint(
            "recorder", "tracker_recorder:make_recorder", registry.TRACKERS
        ),
        importlib.metadata.EntryPoint(
            "not_a_tracker", "tracker_recorder:make_not_a_tracker", registry.TRACKERS
        ),
    ]

    def entry_points(group: str):
        found = list(real(group))
        return found + [ep for ep in extra if ep.group == group]

    monkeypatch.setattr(registry, "_entry_points", entry_points)
    registry.clear_cache()
    module = importlib.import_module("tracker_recorder")
    yield module
    registry.clear_cache()
    sys.modules.pop("tracker_recorder", None)


def _config(plugins: dict) -> object:
    return experiment_from_dict(
        {
            "name": "tracked",
            "env": {"id": "CartPole-v1", "n_envs": 2},
            "trainer": {"total_steps": 512, "steps_per_iteration": 256},
            "value": {"epochs": 1, "minibatch_size": 64},
            "eval": {"episodes": 1},
            "tracking": {"tensorboard": False, "plugins": plugins},
        }
    )


@pytest.mark.slow
def test_yaml_selected_tracker_receives_rows_and_summary(recorder, tmp_path: Path) -> None:
    from trpo_tf.train import train

    run_dir = tmp_path / "run"
    train(_config({"recorder": {"tag": "exp-1"}}), run_dir, quiet=True)
    assert recorder.calls == [
        ("init", str(run_dir), "tracked", "exp-1"),
        ("log", 1, 256),
        ("log", 2, 512),
        ("finish", 512, str(run_dir)),
    ]


@pytest.mark.slow
def test_failing_tracker_warns_once_and_training_finishes(recorder, tmp_path: Path) -> None:
    from trpo_tf.train import train

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(_config({"recorder": {"fail": True}}), tmp_path / "run", quiet=True)
    messages = [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]
    assert result.env_steps == 512
    assert len(messages) == 1
    assert (
        "tracker 'recorder' disabled: ConnectionError: tracking server unreachable" in (messages[0])
    )


def test_unknown_tracker_lists_the_available_ones(recorder, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="recorder"):
        build_trackers(_config({"recordr": {}}), tmp_path)


@pytest.mark.parametrize(
    ("plugins", "match"),
    [
        ({"recorder": 3}, r"tracking\.plugins\.recorder must be a mapping"),
        (
            {"recorder": {"colour": "red"}},
            r"tracking\.plugins\.recorder: tracker 'recorder' rejected",
        ),
        ({"not_a_tracker": None}, r"without log\(\), finish\(\)"),
    ],
)
def test_bad_tracker_settings_are_one_line_config_errors(recorder, tmp_path, plugins, match):
    with pytest.raises(ConfigError, match=match):
        build_trackers(_config(plugins), tmp_path)


@pytest.mark.parametrize(
    ("plugins", "error", "match"),
    [
        ({"recordr": {}}, RegistryError, "recorder"),
        (
            {"recorder": {"colour": "red"}},
            ConfigError,
            r"tracking.plugins.recorder.colour.*tracker 'recorder' takes no keyword 'colour'",
        ),
        ({"recorder": 3}, ConfigError, r"tracking\.plugins\.recorder must be a mapping"),
    ],
)
def test_bad_tracker_settings_stop_training_before_the_run_directory_exists(
    recorder, tmp_path, plugins, error, match
):
    from trpo_tf.train import train

    run_dir = tmp_path / "run"
    with pytest.raises(error, match=match):
        train(_config(plugins), run_dir, quiet=True)
    assert not run_dir.exists()
    assert recorder.calls == []  # checked from the factory's signature, not by calling it


def test_a_tracker_that_breaks_its_contract_leaves_no_run_directory(recorder, tmp_path):
    from trpo_tf.train import train

    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"without log\(\), finish\(\)"):
        train(_config({"not_a_tracker": None}), run_dir, quiet=True)
    # Its factory ran after the run directory was started; nothing of it is left, so
    # the same command works once the plug-in is fixed.
    assert not run_dir.exists()
    kept = tmp_path / "existing"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"without log\(\), finish\(\)"):
        train(_config({"not_a_tracker": None}), kept, quiet=True)
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]
    train(_config({"recorder": {"tag": "t"}}), run_dir, quiet=True)
    assert (run_dir / "summary.json").exists()
