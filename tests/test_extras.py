"""A missing optional package is one line naming the extra, before anything runs."""

from __future__ import annotations

import pytest

from trpo_tf import extras
from trpo_tf.config import load_experiment
from trpo_tf.extras import MissingExtraError, install_command


@pytest.fixture
def nothing_optional(monkeypatch):
    """As after a plain pip install: no optional package is importable."""
    optional = {extra.module for extra in extras.EXTRAS.values()} | {"moviepy", "PIL"}
    real = extras.installed
    monkeypatch.setattr(extras, "installed", lambda module: module not in optional and real(module))


def _config(tmp_path, overrides):
    path = tmp_path / "e.yaml"
    path.write_text("name: e\n")
    return load_experiment(path, overrides)


@pytest.mark.parametrize(
    ("overrides", "extra", "needed_for"),
    [
        (["env.id=HalfCheetah-v5"], "mujoco", "env.id 'HalfCheetah-v5'"),
        (["env.id=LunarLander-v3"], "box2d", "env.id 'LunarLander-v3'"),
        (["runner.kind=ray", "runner.workers=2"], "ray", "runner.kind: ray"),
        (["tracking.wandb.enabled=true"], "wandb", "tracking.wandb.enabled"),
    ],
)
def test_each_missing_extra_is_named(tmp_path, nothing_optional, overrides, extra, needed_for):
    with pytest.raises(MissingExtraError) as error:
        extras.check_experiment(_config(tmp_path, overrides))
    message = str(error.value)
    assert message.startswith(needed_for) and "\n" not in message
    assert message.endswith(f'pip install "trpo_tf[{extra}]"')


def test_classic_control_needs_no_extra_to_train(tmp_path, nothing_optional):
    extras.check_experiment(
        _config(tmp_path, ["env.id=Pendulum-v1", "tracking.wandb.mode=disabled"])
    )


def test_video_needs_its_renderer(nothing_optional):
    with pytest.raises(
        MissingExtraError, match=r"--video of 'CartPole-v1' needs .*pygame.*\[video\]"
    ):
        extras.check_video("CartPole-v1")


def test_every_extra_named_exists_in_setup_cfg():
    import configparser
    from pathlib import Path

    setup = configparser.ConfigParser()
    setup.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    declared = set(setup["options.extras_require"])
    assert set(extras.EXTRAS) <= declared
    assert install_command("mujoco") == 'pip install "trpo_tf[mujoco]"'


def test_cli_reports_a_missing_extra_before_tensorflow(tmp_path, monkeypatch, capsys):
    """One line, exit 2, and TensorFlow never imported (a subprocess would show the timing;
    here the module table does)."""
    import sys

    from trpo_tf.cli import main

    monkeypatch.setattr(extras, "installed", lambda module: module != "mujoco")
    loaded_before = "tensorflow" in sys.modules
    status = main(["train", "mujoco/halfcheetah", "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert err == [
        "trpo-tf: error: env.id 'HalfCheetah-v5' needs MuJoCo, which is not installed: "
        'pip install "trpo_tf[mujoco]"'
    ]
    assert not (tmp_path / "run").exists()
    if not loaded_before:
        assert "tensorflow" not in sys.modules
