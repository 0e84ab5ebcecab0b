"""Property-based fuzzing of experiment files and ``--set`` overrides.

Every generated input either loads, or raises a :class:`~trpo_tf.errors.TrpoTfError`
whose message is one line; never another exception and never a hang. What loads
must also survive the run directory's round trip (``config.yaml`` written by
``dump_experiment`` reads back as the same experiment), and a sample of it must
train for 256 steps (or stop with one error line). A few fixed hostile inputs go
through ``python -m trpo_tf.cli`` to show exit status 2 and one line end to end.

The generator is seeded (``derandomize=True``): every run tries the same
:data:`FUZZED_EXPERIMENTS` inputs; a failure prints the shrunk input to reproduce it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fault_harness import deadline, stderr_lines, the_error_line
from fuzz_strategies import documents, override_texts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trpo_tf import registry
from trpo_tf.config import dump_experiment, experiment_from_dict, load_experiment, to_dict
from trpo_tf.errors import TrpoTfError

FUZZED_EXPERIMENTS = 400
TRAINED = 5
"""Loaded experiments that also train: those furthest from the defaults (each costs 2-3 s)."""

KNOWN_ENVS = ("CartPole-v1", "Pendulum-v1", "Acrobot-v1")
LOAD_DEADLINE_S = 20.0


def _loads_or_one_line(path: Path, overrides: list[str]):
    """The experiment, or None after checking the error is one line."""
    try:
        with deadline(LOAD_DEADLINE_S, f"load_experiment({path}, {overrides!r})"):
            return load_experiment(path, overrides)
    except TrpoTfError as error:
        message = str(error)
        assert message.strip(), repr(error)
        assert len(message.splitlines()) == 1, message
        return None


def _trainable(config):
    """``config`` with a 256-step budget and anything that costs minutes or processes
    (async workers, XLA, wide or deep nets, W&B, unknown plug-ins) made small."""
    spec = to_dict(config)
    env, trainer, value = spec["env"], spec["trainer"], spec["value"]
    if env["id"] not in KNOWN_ENVS:
        env["id"] = "CartPole-v1"
    # Plug-in keyword arguments are checked when the run is built: fuzzed ones would
    # stop every run at its first line.
    env["kwargs"] = spec["advantage"]["kwargs"] = spec["policy"]["distribution_kwargs"] = {}
    spec["policy"]["network"] = spec["value"]["network"] = {}  # names and keywords of networks
    env["n_envs"] = env["n_envs"] if env["n_envs"] in (1, 2, 4) else 2
    env["vector"] = "sync"
    trainer.update(
        total_steps=256,
        steps_per_iteration=256,
        cg_iters=min(trainer["cg_iters"], 20),
        line_search_steps=min(trainer["line_search_steps"], 20),
        jit_compile=False,
        graph_optimizer=False,
        threads=1,
    )
    value["epochs"] = min(value["epochs"], 2)
    value["minibatch_size"] = min(value["minibatch_size"], 256)  # at most the batch
    for net in (spec["policy"], value):
        if len(net["hidden"]) > 3 or any(width > 64 for width in net["hidden"]):
            net["hidden"] = [16]
    if spec["policy"]["distribution"] not in registry.names(registry.DISTRIBUTIONS):
        spec["policy"]["distribution"] = "auto"
    if spec["advantage"]["estimator"] not in registry.names(registry.ADVANTAGES):
        spec["advantage"]["estimator"] = "gae"
    spec["runner"]["kind"] = "sync"
    spec["eval"]["episodes"] = min(spec["eval"]["episodes"], 2)
    spec["eval"]["keep_best"] = False  # a second export
    spec["tracking"] = {"wandb": {"enabled": False}, "tensorboard": False, "plugins": {}}
    spec["checkpoint"] = {"every": 0, "every_s": 3600.0, "keep": 1}
    return experiment_from_dict(spec)


def _leaf_values(config) -> dict[str, object]:
    def walk(node, prefix: str):
        for key, value in node.items():
            if isinstance(value, dict) and key not in (
                "kwargs",
                "distribution_kwargs",
                "plugins",
                "network",
            ):
                yield from walk(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", repr(value)

    return dict(walk(to_dict(config), ""))


def _furthest_from_defaults(configs: list, count: int) -> list:
    """The ``count`` configs that set the most keys to other than their defaults."""
    defaults = _leaf_values(experiment_from_dict({}))

    def changed(config) -> int:
        return sum(value != defaults[key] for key, value in _leaf_values(config).items())

    ranked = sorted(range(len(configs)), key=lambda i: (-changed(configs[i]), i))
    return [configs[i] for i in ranked[:count]]


def test_fuzzed_experiments_load_or_fail_with_one_line(tmp_path: Path) -> None:
    experiment = tmp_path / "experiment.yaml"
    stored = tmp_path / "config.yaml"
    loaded = []

    @settings(
        max_examples=FUZZED_EXPERIMENTS,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(document=documents(), overrides=st.lists(override_texts(), max_size=3))
    def load(document: str | bytes, overrides: list[str]) -> None:
        if isinstance(document, bytes):
            experiment.write_bytes(document)
        else:
            experiment.write_text(document, encoding="utf-8")
        config = _loads_or_one_line(experiment, overrides)
        if config is None:
            return
        # A run directory's config.yaml reads back as the experiment it was written from.
        dump_experiment(config, stored)
        again = load_experiment(stored)
        dump_experiment(again, tmp_path / "again.yaml")
        assert (tmp_path / "again.yaml").read_text() == stored.read_text()
        loaded.append(config)

    load()
    # Enough of the generated experiments are valid for the valid path to be exercised.
    assert len(loaded) >= FUZZED_EXPERIMENTS // 10, len(loaded)

    from trpo_tf.train import train

    finished = 0
    for i, config in enumerate(_furthest_from_defaults(loaded, TRAINED)):
        config = _trainable(config)
        try:
            with deadline(120, f"training fuzzed experiment {config}"):
                result = train(config, tmp_path / f"run{i}", quiet=True)
        except TrpoTfError as error:
            assert len(str(error).splitlines()) == 1, str(error)
            continue
        assert result.env_steps == 256, result
        finished += 1
    assert finished >= TRAINED // 2, finished


HOSTILE_FILES = {
    "python_tag": "env: !!python/object/apply:os.system ['echo pwned']\n",
    "alias": "env: &e {n_envs: 2}\npolicy: *e\n",
    "duplicate_key": "trainer:\n  max_kl: 0.01\n  max_kl: 5.0\n",
}


@pytest.mark.parametrize(
    ("document", "overrides"),
    [
        pytest.param(HOSTILE_FILES["python_tag"], [], id="python_tag"),
        pytest.param(HOSTILE_FILES["alias"], [], id="alias"),
        pytest.param(HOSTILE_FILES["duplicate_key"], [], id="duplicate_key"),
        pytest.param("", ["trainer.max_kl=1.0e+400", "seed"], id="set_inf_then_no_equals"),
    ],
)
def test_cli_refuses_hostile_input_with_exit_2_and_one_line(
    document: str, overrides: list[str], tmp_path: Path
) -> None:
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text(document, encoding="utf-8")
    args = [sys.executable, "-m", "trpo_tf.cli", "train", str(experiment), "--quiet"]
    args += ["--run-dir", str(tmp_path / "run")]
    for override in overrides:
        args += ["--set", override]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled")
    result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    line = the_error_line(result.returncode, result.stderr)
    assert stderr_lines(result.stderr) == [line], textwrap.shorten(result.stderr, 500)
    assert not (tmp_path / "run").exists()
    assert "pwned" not in result.stdout


@pytest.mark.parametrize(
    "override",
    ["trainr.max_kl=[" + ",".join(["1"] * 20_000) + "]", "trainer..max_kl=" + "x" * 10_000],
    ids=["unknown_key", "empty_segment"],
)
def test_an_override_error_line_stays_short(override: str, tmp_path: Path) -> None:
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text("", encoding="utf-8")
    with pytest.raises(TrpoTfError) as raised:
        load_experiment(experiment, [override])
    assert len(str(raised.value)) <= 1000, len(str(raised.value))
