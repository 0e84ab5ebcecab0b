"""Exported SavedModel / TFLite policies against the in-memory agent.

Every case exports an agent with observation normalization on and non-trivial
statistics (some test observations are clipped by the normalizer, some Box
actions by the bounds), then loads the export in a fresh Python process that may
import only TensorFlow and numpy.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf
from fresh_process import in_fresh_process

from trpo_tf.agent import Agent
from trpo_tf.cli import main
from trpo_tf.config import dump_experiment, experiment_from_dict
from trpo_tf.envs import EnvSpec, describe, make_env_fn
from trpo_tf.errors import IncompatibleSpaceError, OutputPathError
from trpo_tf.export import (
    METADATA_FILE,
    TFLITE_FILE,
    ExportError,
    LoadedExport,
    evaluate_export,
    export_metadata,
    export_run,
    export_savedmodel,
    export_tflite,
    space_from_json,
    space_to_json,
)
from trpo_tf.export.module import _space_action_fn, env_action_fn
from trpo_tf.video import VideoError, record_video

BATCH = 32
NO_RENDER_ENV_ID = "TrpoTfExportTestBox-v0"


class BoxActionEnv(gym.Env):
    """obs ``[5]``, action Box ``(2,)`` with one unbounded limit; cannot render."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)
        self.action_space = gym.spaces.Box(
            np.array([-1.0, -np.inf], np.float32), np.array([1.0, 0.5], np.float32), (2,)
        )
        self._t = 0

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._t = 0
        return self.np_random.normal(size=5).astype(np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        assert np.shape(action) == (2,)
        self._t += 1
        obs = self.np_random.normal(size=5).astype(np.float32)
        return obs, float(-np.sum(np.square(action))), False, self._t >= 5, {}

    def render(self) -> None:
        return None


if NO_RENDER_ENV_ID not in gym.registry:
    gym.register(NO_RENDER_ENV_ID, entry_point=BoxActionEnv)


@dataclass
class Case:
    name: str
    agent: Agent
    config: Any
    spec: EnvSpec
    export_dir: Path
    observations: np.ndarray


def _spec_of(env_id: str, action_space: gym.Space | None, obs_dim: int) -> EnvSpec:
    if action_space is None:
        return describe(env_id, make_env_fn(env_id))
    obs_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    return EnvSpec(env_id, obs_dim, action_space, obs_space)


def _build_case(
    name: str,
    env_id: str,
    root: Path,
    action_space: gym.Space | None = None,
    obs_dim: int = 0,
    policy: dict | None = None,
) -> Case:
    spec = _spec_of(env_id, action_space, obs_dim)
    config = experiment_from_dict(
        {
            "name": f"export-{name}",
            "seed": 3,
            "env": {"id": env_id, "normalize_obs": True, "clip_obs": 2.5},
            "policy": {"hidden": [16, 16], **(policy or {})},
            "value": {"hidden": [16]},
        }
    )
    agent = Agent.build(config, spec.observation_dim, spec.action_space)
    rng = np.random.default_rng(len(name))
    d = spec.observation_dim
    stats = agent.observation_normalizer.stats
    stats.mean = rng.normal(0.0, 2.0, d)
    stats.var = rng.uniform(0.3, 4.0, d)
    # The policy's output layer starts near zero (gain 0.01): make actions non-trivial.
    output = agent.policy.network.get_layer("output")
    output.kernel.assign(output.kernel * 150.0)
    output.bias.assign(rng.normal(0.0, 0.5, output.bias.shape).astype(np.float32))
    for variable in agent.policy.head.trainable_variables:
        variable.assign(rng.uniform(-1.0, 0.5, variable.shape).astype(np.float32))
    observations = (stats.mean + rng.normal(0.0, 2.0, (BATCH, d)) * np.sqrt(stats.var)).astype(
        np.float32
    )
    export_dir = export_savedmodel(agent, config, spec, root / name)
    return Case(name, agent, config, spec, export_dir, observations)


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    root = tmp_path_factory.mktemp("exports")
    built = [
        _build_case("cartpole", "CartPole-v1", root),
        _build_case("pendulum", "Pendulum-v1", root),
        # the policy network ends in DenseWithFeatures: [μ(s), φ(s)] reach the head
        _build_case(
            "pendulum_gsde",
            "Pendulum-v1",
            root,
            policy={"distribution": "gsde", "distribution_kwargs": {"num_features": 16}},
        ),
        _build_case(
            "box2",
            NO_RENDER_ENV_ID,
            root,
            gym.spaces.Box(
                np.array([-1.0, -np.inf], np.float32), np.array([1.0, 0.5], np.float32), (2,)
            ),
            obs_dim=5,
        ),
        _build_case("discrete_start", "Unused-v0", root, gym.spaces.Discrete(3, start=-1), 3),
    ]
    return {case.name: case for case in built}


FRESH_PROCESS_CODE = textwrap.dedent(
    """
    for job in jobs:
        model = tf.saved_model.load(job["export_dir"])
        obs = np.load(job["observations"])
        sample = model.sample(tf.constant(obs))
        signature_action = model.signatures["action"](observation=tf.constant(obs))["action"]
        np.savez(
            job["result"],
            action=model.action(tf.constant(obs))["action"].numpy(),
            signature_action=signature_action.numpy(),
            sample_action=sample["action"].numpy(),
            sample_log_prob=sample["log_prob"].numpy(),
            value=model.value(tf.constant(obs))["value"].numpy(),
            metadata=model.metadata()["metadata"].numpy().decode(),
        )
    """
)


@pytest.fixture(scope="module")
def fresh_results(
    cases: dict[str, Case], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, np.ndarray]]:
    """Outputs of every export computed in one TF-only subprocess."""
    jobs = {
        case.name: {"export_dir": str(case.export_dir), "observations": case.observations}
        for case in cases.values()
    }
    return in_fresh_process(FRESH_PROCESS_CODE, tmp_path_factory.mktemp("fresh"), jobs)


def _in_memory(case: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(normalized observations, distribution params, env-ready mode actions)."""
    policy = case.agent.policy
    normalized = case.agent.observation_normalizer(case.observations)
    params = policy.dist_params(tf.constant(normalized)).numpy()
    actions = policy.head.to_env_action(policy.head.mode(tf.constant(params)).numpy())
    return normalized, params, actions


CASE_NAMES = ["cartpole", "pendulum", "pendulum_gsde", "box2", "discrete_start"]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_deterministic_action_and_value_match_in_memory_agent(
    cases: dict[str, Case], fresh_results: dict[str, dict[str, np.ndarray]], name: str
) -> None:
    case, result = cases[name], fresh_results[name]
    normalized, params, expected = _in_memory(case)
    assert np.abs(normalized).max() == pytest.approx(2.5)  # the clip is exercised
    space = case.spec.action_space
    np.testing.assert_array_equal(result["signature_action"], result["action"])
    if isinstance(space, gym.spaces.Discrete):
        assert result["action"].dtype == np.int64
        top2 = np.sort(params, axis=-1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 1e-4  # ignore near-ties of the argmax
        assert clear.sum() > BATCH // 2
        np.testing.assert_array_equal(result["action"][clear], expected[clear])
        assert len(np.unique(expected)) > 1
    else:
        assert result["action"].shape == (BATCH, *space.shape)
        assert result["action"].dtype == space.dtype
        np.testing.assert_allclose(result["action"], expected, atol=1e-5, rtol=0)
        assert np.any(result["action"] == space.high) or np.any(result["action"] == space.low)
    value = case.agent.value_network(normalized).numpy()[:, 0]
    np.testing.assert_allclose(result["value"], value, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_sample_is_in_bounds_with_log_prob_of_raw_sample(
    cases: dict[str, Case], fresh_results: dict[str, dict[str, np.ndarray]], name: str
) -> None:
    case, result = cases[name], fresh_results[name]
    _, params, _ = _in_memory(case)
    actions, log_prob = result["sample_action"], result["sample_log_prob"]
    space = case.spec.action_space
    assert log_prob.shape == (BATCH,)
    assert np.all(np.isfinite(log_prob))
    assert actions.shape == (BATCH, *space.shape)
    assert all(space.contains(a) for a in actions)
    distribution = case.agent.policy.distribution(tf.constant(params))
    if isinstance(space, gym.spaces.Discrete):
        raw = (actions - space.start).astype(np.int32)
        np.testing.assert_allclose(log_prob, distribution.log_prob(raw).numpy(), atol=1e-5)
    else:
        # Where no clipping happened the env action is the raw sample.
        inside = np.all((actions > space.low) & (actions < space.high), axis=-1)
        assert inside.any()
        expected = distribution.log_prob(actions.reshape(BATCH, -1)).numpy()
        np.testing.assert_allclose(log_prob[inside], expected[inside], atol=1e-4)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_metadata_round_trips(
    cases: dict[str, Case], fresh_results: dict[str, dict[str, np.ndarray]], name: str
) -> None:
    case = cases[name]
    from_module = json.loads(str(fresh_results[name]["metadata"]))
    from_file = json.loads((case.export_dir / METADATA_FILE).read_text())
    assert from_module == from_file
    assert from_file == json.loads(json.dumps(export_metadata(case.config, case.spec, case.agent)))
    assert from_file["name"] == case.config.name
    assert from_file["env"] == {
        "id": case.config.env.id,
        "kwargs": {},
        "clip_nonfinite": False,
        "max_episode_steps": None,
    }
    assert from_file["policy"] == "final"
    assert space_from_json(from_file["action_space"]) == case.spec.action_space
    assert space_from_json(from_file["observation_space"]) == case.spec.observation_space
    assert from_file["observation_dim"] == case.spec.observation_dim


def test_space_json_writes_infinite_limits_as_strings() -> None:
    space = gym.spaces.Box(np.array([-np.inf, 0.0]), np.array([1.0, np.inf]), dtype=np.float64)
    data = space_to_json(space)
    assert data["low"] == ["-inf", 0.0] and data["high"] == [1.0, "inf"]
    json.dumps(data, allow_nan=False)
    assert space_from_json(data) == space


ACTION_SPACES = [
    gym.spaces.Discrete(3, start=-1),
    gym.spaces.Box(-1.0, np.array([[1.0, 2.0], [3.0, np.inf]]), (2, 2), np.float64),
    gym.spaces.MultiDiscrete(np.array([[3, 4], [2, 5]]), start=np.array([[0, -2], [1, 0]])),
    gym.spaces.MultiBinary([2, 3]),
]


@pytest.mark.parametrize("space", ACTION_SPACES, ids=lambda space: type(space).__name__)
def test_env_action_mapping_and_space_json(space: gym.Space) -> None:
    """The graph mapping equals the numpy one of the matching distribution heads."""
    assert space_from_json(json.loads(json.dumps(space_to_json(space)))) == space
    rng = np.random.default_rng(1)
    n = 6
    if isinstance(space, gym.spaces.Box):
        raw = rng.normal(0.0, 3.0, (n, int(np.prod(space.shape)))).astype(np.float32)
        flat_low, flat_high = space.low.reshape(-1), space.high.reshape(-1)
        expected = np.clip(raw, flat_low, flat_high).reshape(n, *space.shape)
    elif isinstance(space, gym.spaces.Discrete):
        raw = rng.integers(0, space.n, n).astype(np.int32)
        expected = raw.astype(np.int64) + space.start
    elif isinstance(space, gym.spaces.MultiDiscrete):
        raw = rng.integers(0, space.nvec.reshape(-1), (n, space.nvec.size)).astype(np.int32)
        expected = (raw + space.start.reshape(-1)).reshape(n, *space.shape)
    else:
        raw = rng.integers(0, 2, (n, int(np.prod(space.shape)))).astype(np.int32)
        expected = raw.reshape(n, *space.shape)
    got = _space_action_fn(space)(tf.constant(raw)).numpy()
    assert got.dtype == space.dtype
    np.testing.assert_array_equal(got, expected.astype(space.dtype))
    assert all(space.contains(a) for a in got)


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_tflite_actions_equal_savedmodel(cases: dict[str, Case], tmp_path: Path) -> None:
    case = cases["pendulum"]
    path = export_tflite(case.export_dir, tmp_path / "policy.tflite")
    interpreter = tf.lite.Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner()
    got = runner(observation=case.observations)["action"]
    loaded = tf.saved_model.load(str(case.export_dir))
    expected = loaded.action(tf.constant(case.observations))["action"].numpy()
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_tflite_mismatch_is_an_error(
    cases: dict[str, Case], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = cases["pendulum"]
    real = tf.lite.TFLiteConverter.from_concrete_functions
    spec = tf.TensorSpec([None, case.spec.observation_dim], tf.float32, name="observation")

    def shifted(functions: list[Any], trackable: Any = None) -> Any:
        @tf.function(input_signature=[spec])
        def wrong(observation: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"action": functions[0](observation=observation)["action"] + 0.01}

        return real([wrong.get_concrete_function()], trackable)

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_concrete_functions", shifted)
    with pytest.raises(ExportError, match="disagrees"):
        export_tflite(case.export_dir, tmp_path / "policy.tflite")
    assert not (tmp_path / "policy.tflite").exists()


@pytest.mark.filterwarnings("ignore:.*not in the possible render_modes")
def test_evaluate_export_and_video_error_for_env_without_rendering(
    cases: dict[str, Case], tmp_path: Path
) -> None:
    case = cases["box2"]
    returns = evaluate_export(case.export_dir, episodes=3, seed=0)
    assert returns.shape == (3,) and np.all(np.isfinite(returns))
    assert LoadedExport(case.export_dir).metadata["env"]["id"] == NO_RENDER_ENV_ID
    with pytest.raises(VideoError, match="cannot render"):
        record_video(case.export_dir, tmp_path / "videos", seed=0)


def test_export_cli_rejects_non_run_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def _fake_run_dir(root: Path) -> Path:
    """A run directory as training leaves it (config.yaml + policy/), untrained."""
    config = experiment_from_dict(
        {"name": "cli-export", "env": {"id": "CartPole-v1", "normalize_obs": True}}
    )
    spec = describe(config.env.id, make_env_fn(config.env.id))
    agent = Agent.build(config, spec.observation_dim, spec.action_space)
    agent.observation_normalizer.stats.mean = np.array([0.0, 0.1, 0.0, -0.1])
    agent.observation_normalizer.stats.var = np.array([0.5, 2.0, 0.01, 1.5])
    run_dir = root / "run"
    run_dir.mkdir(parents=True)
    dump_experiment(config, run_dir / "config.yaml")
    agent.save(run_dir / "policy")
    return run_dir


def test_cli_export_then_eval_export_dir_with_video(tmp_path: Path) -> None:
    run_dir = _fake_run_dir(tmp_path)
    cli = [sys.executable, "-m", "trpo_tf.cli"]
    exported = subprocess.run(
        [*cli, "export", str(run_dir)], capture_output=True, text=True, timeout=240
    )
    assert exported.returncode == 0, exported.stderr[-4000:]
    export_dir = run_dir / "export"
    assert (export_dir / "saved_model.pb").is_file()
    assert (export_dir / METADATA_FILE).is_file()
    evaluated = subprocess.run(
        [*cli, "eval", str(export_dir), "--episodes", "2", "--video", str(tmp_path / "videos")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-4000:]
    assert "eval return" in evaluated.stdout
    videos = list((tmp_path / "videos").iterdir())
    assert len(videos) == 1 and videos[0].suffix in (".gif", ".mp4")
    assert videos[0].stat().st_size > 1000


def _box_head_with_own_mapping(graph_twin: bool) -> Any:
    """A Gaussian head (defined outside trpo_tf) that sends 2·tanh(a) to the env."""
    from trpo_tf.distributions.diag_gaussian import DiagGaussianHead

    class ScaledTanhHead(DiagGaussianHead):
        def to_env_action(self, actions: np.ndarray) -> np.ndarray:
            return (2.0 * np.tanh(np.asarray(actions, np.float64))).astype(np.float32)

    class ScaledTanhHeadWithTwin(ScaledTanhHead):
        def to_env_action_graph(self, actions: tf.Tensor) -> tf.Tensor:
            return 2.0 * tf.tanh(actions)

    cls = ScaledTanhHeadWithTwin if graph_twin else ScaledTanhHead
    return cls(np.full(2, -2.0, np.float32), np.full(2, 2.0, np.float32), (2,))


def test_export_uses_a_heads_graph_twin_of_to_env_action() -> None:
    head = _box_head_with_own_mapping(graph_twin=True)
    raw = np.array([[0.3, -4.0], [5.0, 0.0]], np.float32)
    mapped = env_action_fn(head, gym.spaces.Box(-2.0, 2.0, (2,)))(tf.constant(raw)).numpy()
    np.testing.assert_allclose(mapped, head.to_env_action(raw), rtol=1e-6)


def test_export_refuses_a_head_that_maps_actions_only_in_python() -> None:
    head = _box_head_with_own_mapping(graph_twin=False)
    with pytest.raises(IncompatibleSpaceError, match="to_env_action_graph"):
        env_action_fn(head, gym.spaces.Box(-2.0, 2.0, (2,)))


def test_export_never_silently_replaces_another_runs_export(tmp_path: Path) -> None:
    run_a = _fake_run_dir(tmp_path / "a")
    run_b = tmp_path / "b"
    shutil.copytree(run_a, run_b)
    export_run(run_a)
    export_run(run_a)  # re-exporting into the run's own default export dir keeps working
    export_run(run_a, run_a / "export", format="tflite")
    with pytest.raises(OutputPathError, match="--force"):
        export_run(run_b, run_a / "export")
    assert (run_a / "export" / TFLITE_FILE).is_file()
    for run_dir_as_out in (run_a, run_a / "policy"):
        with pytest.raises(OutputPathError, match="run directory"):
            export_run(run_b, run_dir_as_out, force=True)
    assert not (run_a / "saved_model.pb").exists()
    assert not (run_a / "policy" / "saved_model.pb").exists()
    assert export_run(run_b, run_a / "export", force=True) == run_a / "export"
    assert not (run_a / "export" / TFLITE_FILE).exists()  # stale: the new export replaced it


def test_export_out_that_is_a_file_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    for out in (afile, afile / "sub"):
        assert main(["export", str(tmp_path), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("trpo-tf: error: --out"), err
        assert "is a file" in err or "existing file" in err, err
    assert afile.read_text() == "keep me"


def test_export_help_documents_force(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "--force" in capsys.readouterr().out
