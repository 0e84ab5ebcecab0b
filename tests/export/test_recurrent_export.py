"""Exported recurrent policies (lstm, gru): the state is an input and an output.

A tiny agent of each cell is built (no training: the weights are scaled so actions
depend on the observations and on the carried state), exported, and stepped over a
sequence with episode resets in the middle, both in a fresh process that imports only
TensorFlow and in memory through ``Policy.step_params`` + the head's mode.

A recurrent value network (``value.network: {name: lstm|gru}``) exports its state the
same way (``value_state_i`` in ``initial_state`` and ``value``/``env_value``): checked
beside an lstm policy and beside an mlp policy against ``value_network.step``.
"""

from __future__ import annotations

import json
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
from trpo_tf.config import experiment_from_dict
from trpo_tf.envs import EnvSpec, describe, make_env_fn
from trpo_tf.evaluation import RecurrentAct, evaluate
from trpo_tf.export import (
    ENV_TFLITE_FILE,
    METADATA_FILE,
    PolicyStateError,
    evaluate_export,
    export_savedmodel,
    export_tflite,
    load_policy,
)
from trpo_tf.rollout.actor import RecurrentActor

BATCH = 5
STEPS = 9
STATE_SIZES = {"lstm": (6, 6), "gru": (6,)}


@dataclass
class Case:
    kind: str
    agent: Agent
    spec: EnvSpec
    export_dir: Path
    observations: np.ndarray  # [STEPS, BATCH, obs_dim]
    resets: np.ndarray  # [STEPS, BATCH] bool: the row's episode starts at this step


def _build_case(kind: str, env_id: str, root: Path, bptt_length: int = 8) -> Case:
    config = experiment_from_dict(
        {
            "name": f"export-{kind}",
            "seed": 4,
            "env": {"id": env_id, "n_envs": 2, "normalize_obs": True, "clip_obs": 2.5},
            "policy": {"hidden": [8], "network": {"name": kind, "units": 6}},
            "value": {"hidden": [8]},
            "trainer": {"steps_per_iteration": 64, "bptt_length": bptt_length},
        }
    )
    spec = describe(env_id, make_env_fn(env_id))
    agent = Agent.build(config, spec.observation_dim, spec.action_space, spec.env_observation_space)
    rng = np.random.default_rng(len(kind))
    d = spec.observation_dim
    stats = agent.observation_normalizer.stats
    stats.mean = rng.normal(0.0, 1.0, d)
    stats.var = rng.uniform(0.3, 2.0, d)
    network = agent.policy.network
    # Larger recurrent weights: the state matters; the output layer starts near zero
    # (gain 0.01): make actions non-trivial.
    network.cell.recurrent_kernel.assign(network.cell.recurrent_kernel * 2.5)
    output = network.output_network.get_layer("output")
    output.kernel.assign(output.kernel * 150.0)
    output.bias.assign(rng.normal(0.0, 0.3, output.bias.shape).astype(np.float32))
    observations = (
        stats.mean + rng.normal(0.0, 1.5, (STEPS, BATCH, d)) * np.sqrt(stats.var)
    ).astype(np.float32)
    resets = np.zeros((STEPS, BATCH), bool)
    resets[0] = True
    resets[4, 2] = resets[6, 0] = resets[6, 3] = True
    export_dir = export_savedmodel(agent, config, spec, root / kind)
    return Case(kind, agent, spec, export_dir, observations, resets)


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    root = tmp_path_factory.mktemp("recurrent_exports")
    return {
        "lstm": _build_case("lstm", "Pendulum-v1", root),
        "gru": _build_case("gru", "CartPole-v1", root),
    }


def _in_memory(
    case: Case, observations: np.ndarray, resets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, ...]]]:
    """(env-ready mode actions, params, next states) of ``policy.step_params`` per step."""
    policy, normalizer = case.agent.policy, case.agent.observation_normalizer
    batch = observations.shape[1]
    state = policy.initial_state(batch)
    actions, params_per_step, states = [], [], []
    for t in range(len(observations)):
        initial = policy.initial_state(batch)
        state = tuple(
            tf.where(resets[t][:, None], start, part)
            for start, part in zip(initial, state, strict=True)
        )
        normalized = tf.constant(normalizer(observations[t]), tf.float32)
        params, state = policy.step_params(normalized, state)
        mode = policy.head.mode(params).numpy()
        actions.append(policy.head.to_env_action(mode))
        params_per_step.append(params.numpy())
        states.append(tuple(part.numpy() for part in state))
    return np.stack(actions), np.stack(params_per_step), states


FRESH_PROCESS_CODE = textwrap.dedent(
    """
    for job in jobs:
        model = tf.saved_model.load(job["export_dir"])
        observations = np.load(job["observations"])
        resets = np.load(job["resets"])
        steps, batch = resets.shape
        results = {"signatures": np.array(sorted(model.signatures.keys()))}
        # The functional form through the signatures, as a server calls them ...
        state = model.signatures["initial_state"](batch_size=tf.constant(batch))
        # ... and through the module's methods (the state as a dict argument).
        method_state = model.initial_state(tf.constant(batch))
        for t in range(steps):
            initial = model.initial_state(tf.constant(batch))
            mask = tf.constant(resets[t])[:, None]
            state = {k: tf.where(mask, initial[k], state[k]) for k in initial}
            method_state = {k: tf.where(mask, initial[k], method_state[k]) for k in initial}
            obs = tf.constant(observations[t])
            out = model.signatures["env_action"](observation=obs, **state)
            flat = model.action(obs, method_state)
            state = {k: out[k] for k in state}
            method_state = {k: flat[k] for k in method_state}
            results[f"env_action_{t}"] = out["action"].numpy()
            results[f"action_{t}"] = flat["action"].numpy()
            for k in state:
                results[f"{k}_{t}"] = state[k].numpy()
                results[f"method_{k}_{t}"] = method_state[k].numpy()
        sample = model.env_sample({"observation": tf.constant(observations[0])}, state)
        results["sample_action"] = sample["action"].numpy()
        results["sample_log_prob"] = sample["log_prob"].numpy()
        results["sample_keys"] = np.array(sorted(sample.keys()))
        results["value"] = model.value(tf.constant(observations[0]))["value"].numpy()
        results["initial_7"] = model.initial_state(tf.constant(7))["policy_state_0"].numpy()
        results["metadata"] = model.metadata()["metadata"].numpy().decode()
        np.savez(job["result"], **results)
    """
)


@pytest.fixture(scope="module")
def fresh_results(
    cases: dict[str, Case], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """Every export stepped in one TensorFlow-only subprocess."""
    return _step_in_fresh_process(
        cases, tmp_path_factory.mktemp("fresh_recurrent"), FRESH_PROCESS_CODE
    )


def _step_in_fresh_process(
    cases: dict[str, Case], root: Path, code: str
) -> dict[str, dict[str, Any]]:
    """Run ``code`` (TensorFlow only) on every case's export; its saved arrays by case."""
    jobs = {
        case.kind: {
            "export_dir": str(case.export_dir),
            "observations": case.observations,
            "resets": case.resets,
        }
        for case in cases.values()
    }
    return in_fresh_process(code, root, jobs)


def _clear_argmax(params: np.ndarray) -> np.ndarray:
    """Rows whose two largest logits differ by more than round-off."""
    top2 = np.sort(params, axis=-1)[..., -2:]
    return top2[..., 1] - top2[..., 0] > 1e-4


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_stepped_export_equals_the_in_memory_policy_in_a_fresh_process(
    cases: dict[str, Case], fresh_results: dict[str, dict[str, Any]], kind: str
) -> None:
    case, result = cases[kind], fresh_results[kind]
    expected, params, states = _in_memory(case, case.observations, case.resets)
    names = [f"policy_state_{i}" for i in range(len(STATE_SIZES[kind]))]
    discrete = isinstance(case.spec.action_space, gym.spaces.Discrete)
    for t in range(STEPS):
        got, flat = result[f"env_action_{t}"], result[f"action_{t}"]
        np.testing.assert_array_equal(got, flat)
        if discrete:
            clear = _clear_argmax(params[t])
            assert clear.sum() >= BATCH - 1
            np.testing.assert_array_equal(got[clear], expected[t][clear])
        else:
            assert got.shape == (BATCH, *case.spec.action_space.shape)
            np.testing.assert_allclose(got, expected[t], rtol=0, atol=1e-5)
        for name, part in zip(names, states[t], strict=True):
            assert result[f"{name}_{t}"].shape == (BATCH, int(part.shape[-1]))
            np.testing.assert_allclose(result[f"{name}_{t}"], part, rtol=0, atol=1e-5)
            np.testing.assert_array_equal(result[f"method_{name}_{t}"], result[f"{name}_{t}"])
    # The state matters: the rows reset at t = 6 act unlike the same rows carried on.
    only_first = np.zeros_like(case.resets)
    only_first[0] = True
    carried = _in_memory(case, case.observations, only_first)[1]
    assert not np.allclose(carried[6][[0, 3]], params[6][[0, 3]], atol=1e-3)
    if not discrete:
        assert len({tuple(row) for row in np.round(expected[STEPS - 1], 4)}) == BATCH


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_recurrent_signatures_and_metadata(
    cases: dict[str, Case], fresh_results: dict[str, dict[str, Any]], kind: str
) -> None:
    case, result = cases[kind], fresh_results[kind]
    assert set(result["signatures"]) == {
        "action",
        "sample",
        "value",
        "metadata",
        "initial_state",
        "env_action",
        "env_sample",
        "env_value",
        "serving_default",
    }
    assert result["initial_7"].shape == (7, 6) and not result["initial_7"].any()
    names = [f"policy_state_{i}" for i in range(len(STATE_SIZES[kind]))]
    assert set(result["sample_keys"]) == {"action", "log_prob", *names}
    assert np.all(np.isfinite(result["sample_log_prob"]))
    assert all(case.spec.action_space.contains(a) for a in result["sample_action"])
    normalized = case.agent.observation_normalizer(case.observations[0])
    value = case.agent.value_network(normalized).numpy()[:, 0]
    np.testing.assert_allclose(result["value"], value, atol=1e-5, rtol=0)
    metadata = json.loads(str(result["metadata"]))
    assert metadata == json.loads((case.export_dir / METADATA_FILE).read_text())
    assert metadata["recurrent"]["policy_state_sizes"] == list(STATE_SIZES[kind])
    assert metadata["recurrent"]["policy_state_names"] == names
    assert metadata["recurrent"]["bptt_length"] == 8
    assert metadata["networks"] == {"policy": kind, "value": "mlp"}
    signatures = metadata["signatures"]
    assert "initial_state" in signatures
    for name in ("action", "sample", "env_action", "env_sample"):
        assert "policy_state_0" in signatures[name], name
    assert "policy_state" not in signatures["value"]
    assert "value_state" not in signatures["value"]
    assert metadata["recurrent"]["value_state_names"] == []
    assert metadata["recurrent"]["value_state_sizes"] == []


def test_a_memoryless_export_has_no_state(tmp_path: Path) -> None:
    config = experiment_from_dict(
        {"name": "export-mlp", "env": {"id": "CartPole-v1"}, "policy": {"hidden": [8]}}
    )
    spec = describe("CartPole-v1", make_env_fn("CartPole-v1"))
    agent = Agent.build(config, spec.observation_dim, spec.action_space)
    export_dir = export_savedmodel(agent, config, spec, tmp_path / "mlp")
    model = tf.saved_model.load(str(export_dir))
    assert "initial_state" not in model.signatures
    assert set(model.signatures["action"].structured_input_signature[1]) == {"observation"}
    assert set(model.signatures["action"].structured_outputs) == {"action"}
    assert "recurrent" not in json.loads((export_dir / METADATA_FILE).read_text())
    policy = load_policy(export_dir)
    assert not policy.recurrent
    observation = np.array([0.1, -0.2, 0.03, 0.4], np.float32)
    first = policy.predict(observation)
    assert policy.predict(observation, episode_start=False) == first
    assert policy.state is None


def test_load_policy_predict_carries_the_state_and_resets_on_request(
    cases: dict[str, Case],
) -> None:
    case = cases["lstm"]
    observations, resets = case.observations, case.resets
    expected = _in_memory(case, observations, resets)[0]
    policy = load_policy(case.export_dir)
    assert policy.recurrent and policy.state_names == ("policy_state_0", "policy_state_1")
    for t in range(STEPS):
        # resets[0] is all true; None on a later step means no row starts.
        start = resets[t] if resets[t].any() else None
        got = policy.predict(observations[t], episode_start=start)
        np.testing.assert_allclose(got, expected[t], rtol=0, atol=1e-5)
    assert policy.state["policy_state_0"].shape == (BATCH, 6)

    # Two calls carry the state: the second differs from the same call made fresh.
    policy.reset()
    policy.predict(observations[0])
    second = policy.predict(observations[1])
    policy.reset()
    fresh = policy.predict(observations[1])
    assert not np.allclose(second, fresh, atol=1e-3)
    # episode_start restarts only its rows before acting.
    policy.reset()
    policy.predict(observations[0])
    mask = np.array([True, False, True, False, False])
    mixed = policy.predict(observations[1], episode_start=mask)
    np.testing.assert_allclose(mixed[mask], fresh[mask], rtol=0, atol=1e-6)
    np.testing.assert_allclose(mixed[~mask], second[~mask], rtol=0, atol=1e-6)


def test_load_policy_batch_size_change_needs_a_reset(cases: dict[str, Case]) -> None:
    case = cases["lstm"]
    policy = load_policy(case.export_dir)
    policy.predict(case.observations[0])
    with pytest.raises(PolicyStateError, match=r"state of 5 observation stream.*reset\(\)"):
        policy.predict(case.observations[1][:3])
    with pytest.raises(PolicyStateError, match="episode_start has 2 entries"):
        policy.predict(case.observations[1], episode_start=[True, False])
    # Every row starting over takes any batch size; so does reset().
    three = policy.predict(case.observations[1][:3], episode_start=True)
    assert three.shape == (3, 1)
    policy.reset()
    np.testing.assert_array_equal(policy.predict(case.observations[1][:3]), three)
    # One observation (no batch axis) is a batch of one stream.
    policy.reset()
    single = policy.predict(case.observations[0][0])
    assert single.shape == (1,)
    carried = policy.predict(case.observations[1][0])
    policy.reset()
    assert not np.allclose(carried, policy.predict(case.observations[1][0]), atol=1e-3)
    # act() (flattened observations) shares the carried state.
    policy.reset()
    np.testing.assert_array_equal(
        policy.act(case.observations[0]), policy.predict(case.observations[0], episode_start=True)
    )


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_tflite_carries_the_state_like_the_savedmodel(
    cases: dict[str, Case], tmp_path: Path, kind: str
) -> None:
    case = cases[kind]
    path = export_tflite(case.export_dir, tmp_path / "policy.tflite")
    assert path.with_name(ENV_TFLITE_FILE).is_file()
    loaded = tf.saved_model.load(str(case.export_dir))
    interpreter = tf.lite.Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner()
    names = [f"policy_state_{i}" for i in range(len(STATE_SIZES[kind]))]
    tflite_state = {k: v.numpy() for k, v in loaded.initial_state(tf.constant(BATCH)).items()}
    saved_state = dict(tflite_state)
    for t in range(STEPS):
        got = runner(observation=case.observations[t], **tflite_state)
        want = loaded.action(tf.constant(case.observations[t]), saved_state)
        assert np.all(np.isfinite(got["policy_state_0"]))
        for name in names:
            np.testing.assert_allclose(got[name], want[name].numpy(), rtol=0, atol=1e-5)
        if kind == "lstm":
            np.testing.assert_allclose(got["action"], want["action"].numpy(), rtol=0, atol=1e-5)
        tflite_state = {name: got[name] for name in names}
        saved_state = {name: want[name] for name in names}


@pytest.mark.filterwarnings("ignore:.*not in the possible render_modes")
def test_evaluate_export_keeps_one_state_per_env(cases: dict[str, Case]) -> None:
    case = cases["gru"]
    returns = evaluate_export(case.export_dir, episodes=3, seed=0)
    policy = case.agent.policy
    actor = RecurrentActor(policy, None, case.spec.observation_dim, seed=0)
    in_memory = evaluate(
        make_env_fn("CartPole-v1"),
        RecurrentAct(actor.mode, actor.initial_state),
        policy.head,
        case.agent.observation_normalizer,
        3,
        0,
    )
    np.testing.assert_array_equal(returns, in_memory)


# ---- A recurrent value network: its own state in initial_state and value/env_value ----

VALUE_CASES = {
    # name: (env, policy network, value network, V's state sizes)
    "lstm-gru": ("Pendulum-v1", {"name": "lstm", "units": 6}, "gru", (5,)),
    "mlp-lstm": ("CartPole-v1", {}, "lstm", (5, 5)),
}


def _build_value_case(name: str, root: Path) -> Case:
    env_id, policy_network, value_kind, _ = VALUE_CASES[name]
    config = experiment_from_dict(
        {
            "name": f"export-value-{name}",
            "seed": 5,
            "env": {"id": env_id, "n_envs": 2, "normalize_obs": True, "clip_obs": 2.5},
            "policy": {"hidden": [8], "network": policy_network},
            "value": {"hidden": [8], "network": {"name": value_kind, "units": 5}},
            "trainer": {"steps_per_iteration": 64, "bptt_length": 8},
        }
    )
    spec = describe(env_id, make_env_fn(env_id))
    agent = Agent.build(config, spec.observation_dim, spec.action_space, spec.env_observation_space)
    rng = np.random.default_rng(len(name) + 11)
    d = spec.observation_dim
    stats = agent.observation_normalizer.stats
    stats.mean = rng.normal(0.0, 1.0, d)
    stats.var = rng.uniform(0.3, 2.0, d)
    network = agent.value_network
    # Larger recurrent weights: V's memory matters.
    network.cell.recurrent_kernel.assign(network.cell.recurrent_kernel * 2.5)
    output = network.output_network.get_layer("output")
    output.bias.assign(rng.normal(0.0, 0.3, output.bias.shape).astype(np.float32))
    observations = (
        stats.mean + rng.normal(0.0, 1.5, (STEPS, BATCH, d)) * np.sqrt(stats.var)
    ).astype(np.float32)
    resets = np.zeros((STEPS, BATCH), bool)
    resets[0] = True
    resets[5, 1] = True  # one row's episode restarts mid-sequence
    export_dir = export_savedmodel(agent, config, spec, root / name)
    return Case(name, agent, spec, export_dir, observations, resets)


@pytest.fixture(scope="module")
def value_cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    root = tmp_path_factory.mktemp("recurrent_value_exports")
    return {name: _build_value_case(name, root) for name in VALUE_CASES}


def _in_memory_values(
    case: Case, resets: np.ndarray
) -> tuple[np.ndarray, list[tuple[np.ndarray, ...]]]:
    """(V [STEPS, BATCH], next states per step) of ``value_network.step`` from zeros."""
    network, normalizer = case.agent.value_network, case.agent.observation_normalizer
    batch = case.observations.shape[1]
    state = network.initial_state(batch)
    values, states = [], []
    for t in range(len(case.observations)):
        zeros = network.initial_state(batch)
        state = tuple(
            tf.where(resets[t][:, None], start, part)
            for start, part in zip(zeros, state, strict=True)
        )
        normalized = tf.constant(normalizer(case.observations[t]), tf.float32)
        outputs, state = network.step(normalized, state)
        values.append(outputs.numpy()[:, 0])
        states.append(tuple(part.numpy() for part in state))
    return np.stack(values), states


VALUE_FRESH_PROCESS_CODE = textwrap.dedent(
    """
    def names(function):
        return np.array(sorted(function.structured_input_signature[1]))

    for job in jobs:
        model = tf.saved_model.load(job["export_dir"])
        observations = np.load(job["observations"])
        resets = np.load(job["resets"])
        steps, batch = resets.shape
        signatures = model.signatures
        results = {
            "signatures": np.array(sorted(signatures.keys())),
            "action_inputs": names(signatures["action"]),
            "env_action_inputs": names(signatures["env_action"]),
            "sample_inputs": names(signatures["sample"]),
            "value_inputs": names(signatures["value"]),
            "env_value_inputs": names(signatures["env_value"]),
            "value_outputs": np.array(sorted(signatures["value"].structured_outputs)),
            "initial_keys": np.array(sorted(model.initial_state(tf.constant(2)).keys())),
        }
        value_names = [k for k in results["initial_keys"] if k.startswith("value_state_")]
        state = {
            k: v for k, v in signatures["initial_state"](batch_size=tf.constant(batch)).items()
            if k in value_names
        }
        method_state = dict(state)
        for t in range(steps):
            initial = model.initial_state(tf.constant(batch))
            mask = tf.constant(resets[t])[:, None]
            state = {k: tf.where(mask, initial[k], state[k]) for k in value_names}
            method_state = {k: tf.where(mask, initial[k], method_state[k]) for k in value_names}
            obs = tf.constant(observations[t])
            out = signatures["value"](observation=obs, **state)
            env = model.env_value({"observation": obs}, method_state)
            state = {k: out[k] for k in value_names}
            method_state = {k: env[k] for k in value_names}
            results[f"value_{t}"] = out["value"].numpy()
            results[f"env_value_{t}"] = env["value"].numpy()
            for k in value_names:
                results[f"{k}_{t}"] = state[k].numpy()
                results[f"env_{k}_{t}"] = method_state[k].numpy()
        results["metadata"] = model.metadata()["metadata"].numpy().decode()
        np.savez(job["result"], **results)
    """
)


@pytest.fixture(scope="module")
def value_results(
    value_cases: dict[str, Case], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """Every recurrent-V export stepped in one TensorFlow-only subprocess."""
    return _step_in_fresh_process(
        value_cases, tmp_path_factory.mktemp("fresh_recurrent_value"), VALUE_FRESH_PROCESS_CODE
    )


@pytest.mark.parametrize("name", list(VALUE_CASES))
def test_stepped_recurrent_value_equals_value_network_step_in_a_fresh_process(
    value_cases: dict[str, Case], value_results: dict[str, dict[str, Any]], name: str
) -> None:
    case, result = value_cases[name], value_results[name]
    sizes = VALUE_CASES[name][3]
    names = [f"value_state_{i}" for i in range(len(sizes))]
    expected, states = _in_memory_values(case, case.resets)
    for t in range(STEPS):
        np.testing.assert_allclose(result[f"value_{t}"], expected[t], rtol=0, atol=1e-5)
        np.testing.assert_allclose(result[f"env_value_{t}"], expected[t], rtol=0, atol=1e-5)
        for state_name, part in zip(names, states[t], strict=True):
            assert result[f"{state_name}_{t}"].shape == (BATCH, sizes[0])
            np.testing.assert_allclose(result[f"{state_name}_{t}"], part, rtol=0, atol=1e-5)
            np.testing.assert_allclose(result[f"env_{state_name}_{t}"], part, rtol=0, atol=1e-5)
    # V's memory matters: the row reset at t = 5 is valued unlike the same row carried
    # on, and unlike the memoryless call from the zero state at a later step.
    only_first = np.zeros_like(case.resets)
    only_first[0] = True
    carried = _in_memory_values(case, only_first)[0]
    assert abs(carried[5, 1] - expected[5, 1]) > 1e-3
    normalized = case.agent.observation_normalizer(case.observations[STEPS - 1])
    memoryless = case.agent.value_network(normalized).numpy()[:, 0]
    assert not np.allclose(memoryless, expected[STEPS - 1], atol=1e-3)


@pytest.mark.parametrize("name", list(VALUE_CASES))
def test_recurrent_value_signatures_and_metadata(
    value_cases: dict[str, Case], value_results: dict[str, dict[str, Any]], name: str
) -> None:
    case, result = value_cases[name], value_results[name]
    _, policy_network, value_kind, sizes = VALUE_CASES[name]
    policy_recurrent = bool(policy_network)
    policy_names = ["policy_state_0", "policy_state_1"] if policy_recurrent else []
    value_names = [f"value_state_{i}" for i in range(len(sizes))]
    assert "initial_state" in set(result["signatures"])
    assert list(result["initial_keys"]) == sorted([*policy_names, *value_names])
    assert list(result["value_inputs"]) == sorted(["observation", *value_names])
    assert list(result["env_value_inputs"]) == sorted(["observation", *value_names])
    assert list(result["value_outputs"]) == sorted(["value", *value_names])
    # The acting signatures take the policy's state only (none for an mlp policy).
    for key in ("action_inputs", "env_action_inputs", "sample_inputs"):
        assert list(result[key]) == sorted(["observation", *policy_names]), key
    metadata = json.loads(str(result["metadata"]))
    assert metadata == json.loads((case.export_dir / METADATA_FILE).read_text())
    recurrent = metadata["recurrent"]
    assert recurrent["policy_state_names"] == policy_names
    assert recurrent["policy_state_sizes"] == ([6, 6] if policy_recurrent else [])
    assert recurrent["value_state_names"] == value_names
    assert recurrent["value_state_sizes"] == list(sizes)
    assert "not converted to TFLite" in recurrent["tflite"]
    assert metadata["networks"] == {
        "policy": policy_network.get("name", "mlp"),
        "value": value_kind,
    }
    signatures = metadata["signatures"]
    for key in ("value", "env_value", "initial_state"):
        assert "value_state_0" in signatures[key], key
    for key in ("action", "sample", "env_action", "env_sample"):
        assert "value_state" not in signatures[key], key
        assert ("policy_state_0" in signatures[key]) == policy_recurrent, key


def test_load_policy_acts_with_the_policy_state_only(value_cases: dict[str, Case]) -> None:
    memoryless = load_policy(value_cases["mlp-lstm"].export_dir)
    assert not memoryless.recurrent and memoryless.state_names == ()
    assert memoryless.initial_state(3) == {}
    observations = value_cases["mlp-lstm"].observations
    first = memoryless.predict(observations[0])
    assert first.shape == (BATCH,)
    np.testing.assert_array_equal(memoryless.predict(observations[0], episode_start=False), first)
    assert memoryless.state is None

    case = value_cases["lstm-gru"]
    policy = load_policy(case.export_dir)
    assert policy.recurrent and policy.state_names == ("policy_state_0", "policy_state_1")
    assert set(policy.initial_state(3)) == {"policy_state_0", "policy_state_1"}
    expected = _in_memory(case, case.observations, case.resets)[0]
    for t in range(STEPS):
        start = case.resets[t] if case.resets[t].any() else None
        got = policy.predict(case.observations[t], episode_start=start)
        np.testing.assert_allclose(got, expected[t], rtol=0, atol=1e-5)
    assert set(policy.state) == {"policy_state_0", "policy_state_1"}


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_tflite_of_a_recurrent_value_export_converts_the_policy_only(
    value_cases: dict[str, Case], tmp_path: Path
) -> None:
    case = value_cases["lstm-gru"]
    path = export_tflite(case.export_dir, tmp_path / "policy.tflite")
    interpreter = tf.lite.Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner()
    inputs = set(runner.get_input_details())
    assert inputs == {"observation", "policy_state_0", "policy_state_1"}
    assert set(runner.get_output_details()) == {"action", "policy_state_0", "policy_state_1"}
