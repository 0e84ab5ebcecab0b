"""A third-party package broken in each way the plug-in guide allows: one line, exit 2.

``package/`` holds ``trpo-tf-broken`` 0.1.0 (code and a ``*.dist-info``): putting that
directory on ``sys.path`` installs it, so ``importlib.metadata`` finds its entry points
exactly as it finds a pip-installed package. Each break goes through ``trpo-tf train``
(``trpo_tf.cli.main`` in this process, two cases in a subprocess) and must end in one
``trpo-tf: error:`` line naming the plug-in, its package and entry point, exit status 2,
and, when the pre-check catches it, no run directory.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trpo_tf import registry
from trpo_tf.cli import main

PACKAGE = Path(__file__).resolve().parent / "package"
PROVIDER = "package trpo-tf-broken 0.1.0"
EXPERIMENT = """\
name: broken
env: {id: Pendulum-v1, n_envs: 2}
policy: {distribution: auto, hidden: [8]}
trainer: {total_steps: 256, steps_per_iteration: 128}
eval: {every: 1, episodes: 1}
"""
TF_LOG_PREFIXES = ("I0000", "W0000", "E0000", "WARNING: All log messages")


@pytest.fixture(autouse=True)
def broken_package(monkeypatch: pytest.MonkeyPatch):
    """``trpo-tf-broken`` installed for this test (its directory on sys.path)."""
    monkeypatch.syspath_prepend(str(PACKAGE))
    monkeypatch.delenv("TRPO_TF_DEBUG", raising=False)
    importlib.invalidate_caches()
    registry.clear_cache()
    yield
    registry.clear_cache()


def _experiment(tmp_path: Path) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(EXPERIMENT)
    return path


def _train(tmp_path: Path, capsys: pytest.CaptureFixture, *sets: str) -> tuple[int, list[str]]:
    """``trpo-tf train broken.yaml --quiet --set ...``: exit status and stderr lines."""
    args = ["train", str(_experiment(tmp_path)), "--quiet", "--run-dir", str(tmp_path / "run")]
    for item in sets:
        args += ["--set", item]
    capsys.readouterr()
    status = main(args)
    return status, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def _plugin(kind: str, name: str, target: str) -> str:
    return f"{kind} '{name}' ({PROVIDER}, entry point trpo_tf_broken:{target})"


TRACEBACK_HINT = " (--debug or TRPO_TF_DEBUG=1 shows the traceback)"

# (--set overrides, the whole error line after "trpo-tf: error: ")
BREAKS = {
    "head constructor raises": (
        ["policy.distribution=broken_raising_head"],
        "policy.distribution: "
        + _plugin("distribution", "broken_raising_head", "make_raising_head")
        + " raised in factory(action_space, **policy.distribution_kwargs): RuntimeError: "
        "no σ table for (1,) actions" + TRACEBACK_HINT,
    ),
    "params() returns [B, d] for param_dim 2d": (
        ["policy.distribution=broken_short_params"],
        "policy.distribution: "
        + _plugin("distribution", "broken_short_params", "make_short_params_gaussian")
        + " breaks the DistributionHead contract: params(net_out) returned shape [7, 1], "
        "expected [7, 2] = [batch, param_dim]",
    ),
    "estimator returns [T*N]": (
        ["policy.distribution=broken_fixed_std", "advantage.estimator=broken_flat"],
        "advantage.estimator: "
        + _plugin("advantage estimator", "broken_flat", "make_flat_estimator")
        + " breaks the AdvantageEstimator contract: estimator(inputs).advantages has shape "
        "(32,), expected (16, 2) = [T, n_envs], the shape of inputs.rewards (time-major, "
        "one column per env)",
    ),
    "extra key in diagnostics": (
        ["policy.distribution=broken_extra_diagnostics"],
        "policy.distribution: "
        + _plugin("distribution", "broken_extra_diagnostics", "make_extra_diagnostics_gaussian")
        + " breaks the DistributionHead contract: diagnostics(params) returned the key(s) "
        "'mean_abs_mu', which are not metrics.csv columns a head may fill (allowed: "
        "policy_std); drop them (return {} if nothing fits)",
    ),
    "estimator returns a tuple": (
        ["advantage.estimator=broken_tuple"],
        "advantage.estimator: "
        + _plugin("advantage estimator", "broken_tuple", "make_tuple_estimator")
        + " breaks the AdvantageEstimator contract: estimator(inputs) returned tuple, expected "
        "trpo_tf.interfaces.AdvantageOutputs(advantages=..., value_targets=...)",
    ),
    "env factory returns one object twice": (
        ["env.id=broken_same_env"],
        "env.id: "
        + _plugin("environment", "broken_same_env", "make_same_env")
        + " breaks the EnvFactory contract: factory() returned the same LineEnv object on two "
        "calls; it must return a new environment each call (it is called once per "
        "env.n_envs slot)",
    ),
    "reward is a 1-element array": (
        ["env.id=broken_array_reward", "policy.distribution=broken_fixed_std"],
        "env.id: "
        + _plugin("environment", "broken_array_reward", "make_array_reward_env")
        + " breaks the EnvFactory contract: step(action) returned a reward of type ndarray (",
    ),
    "terminated is an int": (
        ["env.id=broken_int_terminated"],
        "env.id: "
        + _plugin("environment", "broken_int_terminated", "make_int_terminated_env")
        + " breaks the EnvFactory contract: step(action) returned terminated of type int (0); "
        "it must be a bool",
    ),
    "Python if on a tensor in params()": (
        ["policy.distribution=broken_graph_if"],
        "policy.distribution: "
        + _plugin("distribution", "broken_graph_if", "make_graph_if_gaussian")
        + " raised in params(net_out): OperatorNotAllowedInGraphError: Using a symbolic "
        "`tf.Tensor` as a Python `bool` is not allowed.; trpo_tf traces plug-in code without "
        "autograph: use tf.where/tf.cond, not Python if/for/bool() on tensors" + TRACEBACK_HINT,
    ),
}


@pytest.mark.parametrize("label", list(BREAKS))
def test_break_is_one_line_naming_the_plugin_before_the_run_directory_exists(
    label: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sets, expected = BREAKS[label]
    status, lines = _train(tmp_path, capsys, *sets)
    assert len(lines) == 1, lines
    line = lines[0]
    if expected.endswith("("):  # the value shown varies
        assert line.startswith(f"trpo-tf: error: {expected}"), line
        assert line.endswith("); it must be an int or float"), line
    else:
        assert line == f"trpo-tf: error: {expected}"
    assert status == 2
    assert not (tmp_path / "run").exists()


ENV_FACTORY_RAISES = "env.id: " + _plugin("environment", "broken_raising_env", "make_raising_env")


@pytest.mark.parametrize(
    ("kwargs", "call"), [({}, "factory()"), ({"length": 5}, "factory(**env.kwargs)")]
)
def test_env_factory_that_raises_is_named_by_train_before_the_run_directory_exists(
    kwargs: dict, call: str, tmp_path: Path
) -> None:
    # Through train(): the CLI makes one env before TensorFlow loads (trpo_tf/commands/train.py),
    # where the pre-check's TensorFlow-free part, check_env, is what names the plug-in.
    from trpo_tf.config import load_experiment
    from trpo_tf.errors import PluginError
    from trpo_tf.plugin_env_checks import check_env
    from trpo_tf.train import train

    sets = ["env.id=broken_raising_env", f"env.kwargs={kwargs}"]
    config = load_experiment(_experiment(tmp_path), sets)
    expected = (
        f"{ENV_FACTORY_RAISES} raised in {call}: OSError: simulator license file not found"
        + TRACEBACK_HINT
    )
    with pytest.raises(PluginError) as caught:
        check_env(config)
    assert str(caught.value) == expected
    with pytest.raises(PluginError) as caught:
        train(config, tmp_path / "run", quiet=True)
    assert str(caught.value) == expected
    assert not (tmp_path / "run").exists()


def test_env_factory_that_raises_is_named_by_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    status, lines = _train(tmp_path, capsys, "env.id=broken_raising_env")
    assert lines == [
        f"trpo-tf: error: {ENV_FACTORY_RAISES} raised in factory(): OSError: simulator "
        "license file not found" + TRACEBACK_HINT
    ]
    assert status == 2


def test_env_kwargs_of_the_wrong_type_are_the_configs_error_naming_the_package(
    tmp_path: Path,
) -> None:
    from trpo_tf.config import load_experiment
    from trpo_tf.errors import ConfigError, PluginError
    from trpo_tf.plugin_env_checks import check_env

    config = load_experiment(
        _experiment(tmp_path), ["env.id=broken_line", "env.kwargs={length: [1]}"]
    )
    with pytest.raises(ConfigError) as caught:
        check_env(config)
    assert not isinstance(caught.value, PluginError)
    assert str(caught.value) == (
        "env.kwargs: "
        + _plugin("environment", "broken_line", "make_line_env")
        + " could not be made with {'length': [1]}: TypeError: int() argument must be a "
        "string, a bytes-like object or a real number, not 'list'; fix or remove those env.kwargs"
    )


def test_numpy_twin_with_an_offset_log_prob_is_refused_instead_of_training_with_a_wrong_beta(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    status, lines = _train(tmp_path, capsys, "policy.distribution=broken_offset_sampler")
    assert len(lines) == 1, lines
    prefix = (
        "trpo-tf: error: policy.distribution: "
        + _plugin("distribution", "broken_offset_sampler", "make_offset_sampler_gaussian")
        + " breaks the DistributionHead contract: numpy_sampler().sample(net_out, rng) returned "
        "log_prob that differs from distribution(params).log_prob of its actions by up to 0.693 "
    )
    assert lines[0].startswith(prefix), lines[0]
    assert lines[0].endswith(
        "training would use a wrong β(a|s) in the importance ratio: make the numpy twin "
        "compute the same log-probability"
    )
    assert status == 2
    assert not (tmp_path / "run").exists()


def test_the_unbroken_plugins_pass_the_pre_check(tmp_path: Path) -> None:
    from trpo_tf.config import load_experiment
    from trpo_tf.plugin_checks import check_plugins

    sets = ["env.id=broken_line", "policy.distribution=broken_fixed_std"]
    times = check_plugins(load_experiment(_experiment(tmp_path), sets))
    assert times.total > 0


def test_an_estimator_that_raises_later_in_training_is_one_line_too(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # Right in the pre-check (its first call), raises in iteration 1 (its second).
    status, lines = _train(tmp_path, capsys, "advantage.estimator=broken_late_raise")
    assert lines == [
        "trpo-tf: error: advantage.estimator: "
        + _plugin("advantage estimator", "broken_late_raise", "make_late_raise_estimator")
        + " raised in estimator(inputs): FloatingPointError: λ-return table overflowed at call 2"
        + TRACEBACK_HINT
    ]
    assert status == 2


def test_a_numpy_sampler_that_raises_during_a_rollout_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    status, lines = _train(tmp_path, capsys, "policy.distribution=broken_late_sampler")
    assert lines == [
        "trpo-tf: error: policy.distribution: "
        + _plugin("distribution", "broken_late_sampler", "make_late_raise_sampler_gaussian")
        + " raised in numpy_sampler().sample(net_out, rng): ArithmeticError: noise table "
        "exhausted" + TRACEBACK_HINT
    ]
    assert status == 2


def test_debug_prints_the_traceback_after_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRPO_TF_DEBUG", "1")
    status, lines = _train(tmp_path, capsys, "policy.distribution=broken_raising_head")
    assert status == 2
    assert lines[0] == (
        "trpo-tf: error: policy.distribution: "
        + _plugin("distribution", "broken_raising_head", "make_raising_head")
        + " raised in factory(action_space, **policy.distribution_kwargs): RuntimeError: "
        "no σ table for (1,) actions"
    )
    assert lines[1] == "Traceback (most recent call last):"
    assert any("trpo_tf_broken" in line and "make_raising_head" in line for line in lines)
    assert lines[-1] == "RuntimeError: no σ table for (1,) actions"
    assert not (tmp_path / "run").exists()


def _cli_subprocess(tmp_path: Path, *sets: str, debug: bool = False) -> tuple[int, list[str]]:
    env = dict(os.environ)
    env.pop("TRPO_TF_DEBUG", None)
    env.update(
        PYTHONPATH=os.pathsep.join([str(PACKAGE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        CUDA_VISIBLE_DEVICES="",
        WANDB_MODE="disabled",
        **({"TRPO_TF_DEBUG": "1"} if debug else {}),
    )
    args = [sys.executable, "-m", "trpo_tf.cli", "train", str(_experiment(tmp_path)), "--quiet"]
    args += ["--run-dir", str(tmp_path / "run")]
    for item in sets:
        args += ["--set", item]
    result = subprocess.run(
        args,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    lines = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and not line.startswith(TF_LOG_PREFIXES)
    ]
    return result.returncode, lines


@pytest.mark.slow
@pytest.mark.parametrize(
    "label", ["params() returns [B, d] for param_dim 2d", "env factory returns one object twice"]
)
def test_break_through_the_installed_cli(label: str, tmp_path: Path) -> None:
    sets, expected = BREAKS[label]
    status, lines = _cli_subprocess(tmp_path, *sets)
    assert lines == [f"trpo-tf: error: {expected}"]
    assert status == 2
    assert not (tmp_path / "run").exists()
