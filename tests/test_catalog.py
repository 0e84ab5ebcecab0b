"""Shipped experiments by name: package data, ``trpo-tf experiments``, ``trpo-tf config``."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from trpo_tf import catalog
from trpo_tf.config import experiment_from_dict, load_experiment
from trpo_tf.config_doc import meanings, render
from trpo_tf.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_top_level_experiments_is_the_shipped_folder():
    """`trpo-tf train experiments/cartpole.yaml` (the README's first command) reads the
    same file that a plain pip install ships."""
    assert (REPO / "experiments" / "cartpole.yaml").resolve() == catalog.shipped()["cartpole"]


def test_every_shipped_experiment_has_a_name_and_loads():
    names = catalog.shipped()
    assert {"cartpole", "pendulum", "mujoco/halfcheetah", "box2d/lunar_lander"} <= set(names)
    for name, path in names.items():
        assert catalog.resolve(name) == path
        assert catalog.name_of(path) == name
        load_experiment(path)  # valid (plug-in names are only checked when a run builds)


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ("cartpole", "cartpole"),
        ("cartpole.yaml", "cartpole"),
        ("mujoco/halfcheetah", "mujoco/halfcheetah"),
        ("halfcheetah", "mujoco/halfcheetah"),  # a file name only one experiment has
        ("experiments/mujoco/ant.yaml", "mujoco/ant"),
    ],
)
def test_names_resolve_to_shipped_files(spec, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an empty directory, as after pip install
    assert catalog.resolve(spec) == catalog.shipped()[name]


def test_a_path_wins_over_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cartpole").write_text("name: mine\n")
    assert catalog.resolve("cartpole") == Path("cartpole")


def test_unknown_names_suggest_the_closest():
    with pytest.raises(
        ConfigError, match=r"unknown experiment: 'cartpol'; did you mean 'cartpole'"
    ):
        catalog.resolve("cartpol")
    with pytest.raises(ConfigError, match=r"experiment file not found: 'nope\.yaml'.*trpo-tf exp"):
        catalog.resolve("nope.yaml")


def test_every_listed_result_is_in_its_benchmark_document():
    known = catalog.results()
    assert set(known) == set(catalog.shipped()), "results.json: one entry per experiment"
    for name, entry in known.items():
        if entry["result"] == "-":
            continue
        text = (REPO / entry["source"]).read_text()
        for number in re.findall(r"-?[\d,]+\.\d", entry["result"]):
            assert number in text, f"{name}: {number} not in {entry['source']}"
        for spread in re.findall(r"-?[\d,]+(?:\.\d+)? ± [\d,]+(?:\.\d+)?", entry["result"]):
            assert spread in text, f"{name}: {spread} not in {entry['source']}"


def test_experiments_command_lists_env_budget_and_result(capsys):
    from trpo_tf.cli import main

    assert main(["experiments"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("mujoco/halfcheetah "))
    mean = catalog.results()["mujoco/halfcheetah"]["result"].split()[0]
    assert row.split()[1:4] == ["HalfCheetah-v5", "1M", mean]
    assert re.search(r"^cartpole\s+CartPole-v1\s+100k\s+500\.0 ± 0\.0", out, re.M)


def test_config_prints_yaml_that_trains_the_same_experiment(capsys):
    from trpo_tf.cli import main

    assert main(["config", "cartpole", "--set", "trainer.max_kl=0.02"]) == 0
    out = capsys.readouterr().out
    expected = load_experiment(catalog.shipped()["cartpole"], ["trainer.max_kl=0.02"])
    assert experiment_from_dict(yaml.safe_load(out)) == expected
    line = next(line for line in out.splitlines() if line.strip().startswith("max_kl:"))
    assert "(default: 0.01 <- changed)" in line
    line = next(line for line in out.splitlines() if line.strip().startswith("total_steps:"))
    assert "Env steps to train for" in line and "(default: 100000)" in line


def test_config_meanings_come_from_the_schema():
    docs = meanings()
    assert docs["trainer.threads"].startswith("Threads for TensorFlow")
    assert docs["env"].startswith("what to train on")  # a section: its class docstring
    # A comment above a field counts as its meaning too.
    assert docs["trainer.fvp_subsample"].startswith("Fraction of the batch")
    text = render(load_experiment(catalog.shipped()["pendulum"]))
    assert all(len(line.split("  # ", 1)) == 2 for line in text.splitlines()[3:] if ": " in line)


def test_config_of_an_unknown_key_is_one_line(capsys):
    from trpo_tf.cli import main

    assert main(["config", "cartpole", "--set", "trainer.max_kll=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did you mean 'trainer.max_kl'" in err[0]


@pytest.mark.slow
def test_the_wheel_ships_the_experiments(tmp_path):
    """A plain (non-editable) install has them: they are in the wheel."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("trpo_tf-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in catalog.shipped():
        assert f"trpo_tf/experiments/{name}.yaml" in names
    assert "trpo_tf/experiments/results.json" in names
    assert "trpo_tf/__main__.py" in names


@pytest.mark.parametrize(
    ("env_id", "name"),
    [("HalfCheetah-v5", "mujoco/halfcheetah"), ("Pendulum-v1", "pendulum")],
)
def test_a_gymnasium_id_trains_with_the_experiment_made_for_it(env_id, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    chosen = catalog.experiment_for(env_id)
    assert chosen.path == catalog.shipped()[name] and chosen.overrides == ()
    assert name in chosen.note


def test_a_box_env_without_an_experiment_gets_the_shared_default():
    chosen = catalog.experiment_for("MountainCarContinuous-v0")
    assert chosen.path == catalog.shipped()[catalog.SHARED_DEFAULT]
    config = load_experiment(chosen.path, [*chosen.overrides, "trainer.max_kl=0.03"])
    default = load_experiment(chosen.path)
    assert config.env.id == "MountainCarContinuous-v0"
    assert config.name == "mountaincarcontinuous-v0"
    assert config.trainer.max_kl == 0.03  # the user's --set come after and win
    assert config.policy == default.policy and config.value == default.value
    assert "no experiment of its own" in chosen.note and catalog.SHARED_DEFAULT in chosen.note


def test_a_discrete_env_without_an_experiment_is_one_line():
    with pytest.raises(ConfigError) as raised:
        catalog.experiment_for("Acrobot-v1")
    message = str(raised.value)
    assert "\n" not in message
    assert "Acrobot-v1 has no experiment of its own and its actions are Discrete(3)" in message
    assert "trpo-tf train cartpole --set env.id=Acrobot-v1" in message


def test_an_env_that_cannot_be_built_is_one_line(monkeypatch):
    import gymnasium

    def broken(**kwargs):
        raise RuntimeError("no licence server\nsecond line")

    gymnasium.register("BrokenForCatalog-v0", entry_point=broken)
    try:
        with pytest.raises(ConfigError) as raised:
            catalog.experiment_for("BrokenForCatalog-v0")
    finally:
        del gymnasium.registry["BrokenForCatalog-v0"]
    assert str(raised.value) == (
        "gymnasium env BrokenForCatalog-v0 could not be built to read its action space "
        "(RuntimeError: no licence server)"
    )


def test_neither_a_name_nor_an_id_keeps_the_unknown_experiment_error():
    with pytest.raises(ConfigError, match=r"unknown experiment: 'Nope-v0'.*gymnasium id"):
        catalog.experiment_for("Nope-v0")
    with pytest.raises(ConfigError, match=r"experiment file not found: 'Pendulum-v1\.yaml'"):
        catalog.experiment_for("Pendulum-v1.yaml")


def test_train_with_a_gymnasium_id_says_what_it_trains(tmp_path, capsys):
    from trpo_tf.cli import main

    run_dir = tmp_path / "run"
    status = main(
        [
            "train",
            "MountainCarContinuous-v0",
            "--run-dir",
            str(run_dir),
            "--quiet",
            "--set",
            "trainer.total_steps=2048",
            "--set",
            "eval.episodes=1",
        ]
    )
    assert status == 0
    err = capsys.readouterr().err
    assert "MountainCarContinuous-v0 has no experiment of its own: the shared default" in err
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["env"]["id"] == "MountainCarContinuous-v0"
    assert (
        resolved["trainer"]["max_kl"]
        == load_experiment(catalog.shipped()[catalog.SHARED_DEFAULT]).trainer.max_kl
    )
