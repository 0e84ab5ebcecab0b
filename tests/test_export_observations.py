"""Env observations flattened inside the export's graph, against gymnasium's flatten.

``gymnasium.spaces.flatten`` is what training sees (trpo_tf wraps every env in
``FlattenObservation``), so it is the oracle for each supported space, nested
Dict/Tuple spaces included; then an export's ``env_*`` signatures, loaded in a
fresh TF-only process, must act exactly as its flattened ``action``/``value``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from trpo_tf.agent import Agent
from trpo_tf.config import experiment_from_dict
from trpo_tf.envs import describe, make_env_fn
from trpo_tf.errors import IncompatibleSpaceError, RunDirError
from trpo_tf.export import (
    ENV_TFLITE_FILE,
    METADATA_FILE,
    TFLITE_FILE,
    export_savedmodel,
    export_tflite,
    load_policy,
    space_from_json,
    space_to_json,
)
from trpo_tf.export.observations import env_observation_inputs

DICT_ENV_ID = "TrpoTfExportTestDictObs-v0"


def _dict_space() -> gym.spaces.Dict:
    """Keys in a non-sorted order (pairs keep it), every leaf type, a nested Tuple."""
    return gym.spaces.Dict(
        [
            ("pos", gym.spaces.Box(-1.0, 1.0, (2, 3), np.float32)),
            ("mode", gym.spaces.Discrete(3, start=1)),
            ("grid", gym.spaces.MultiDiscrete([[2, 3], [4, 2]], start=[[1, 0], [0, -1]])),
            ("flags", gym.spaces.Tuple((gym.spaces.MultiBinary(2), gym.spaces.Discrete(2)))),
        ]
    )


SPACES = {
    "box_2d": gym.spaces.Box(-2.0, 2.0, (3, 4), np.float32),
    "box_image_uint8": gym.spaces.Box(0, 255, (2, 2, 3), np.uint8),
    "box_float64": gym.spaces.Box(-1.0, 1.0, (3,), np.float64),
    "discrete_start": gym.spaces.Discrete(5, start=-2),
    "multi_discrete_2d": gym.spaces.MultiDiscrete([[2, 3], [4, 5]], start=[[1, 0], [0, -1]]),
    "multi_binary_2d": gym.spaces.MultiBinary([2, 3]),
    "tuple": gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Box(0.0, 1.0, (2,)))),
    "dict_nested": _dict_space(),
}


def _leaf_batches(space: gym.Space, samples: list[Any], path: tuple[str, ...] = ()) -> dict:
    """``{signature input name: [batch, ...] array}`` as the module documents the names."""
    if isinstance(space, gym.spaces.Dict):
        out: dict = {}
        for key, child in space.spaces.items():
            out.update(_leaf_batches(child, [s[key] for s in samples], (*path, key)))
        return out
    if isinstance(space, gym.spaces.Tuple):
        out = {}
        for index, child in enumerate(space.spaces):
            out.update(_leaf_batches(child, [s[index] for s in samples], (*path, str(index))))
        return out
    return {"_".join(("observation", *path)): np.stack([np.asarray(s) for s in samples])}


@pytest.mark.parametrize("name", list(SPACES))
def test_graph_flattening_equals_gymnasium_flatten(name: str) -> None:
    space = SPACES[name]
    space.seed(7)
    samples = [space.sample() for _ in range(16)]
    specs, flatten = env_observation_inputs(space)
    batches = _leaf_batches(space, samples)
    assert list(specs) == list(batches)
    inputs = {key: tf.constant(value, specs[key].dtype) for key, value in batches.items()}
    for key, spec in specs.items():
        assert spec.is_compatible_with(inputs[key]), key
    got = flatten(inputs).numpy()
    expected = np.stack([gym.spaces.flatten(space, sample) for sample in samples])
    assert got.dtype == np.float32 and got.shape == (16, gym.spaces.flatdim(space))
    np.testing.assert_array_equal(got, expected.astype(np.float32))


def test_composite_space_json_round_trips_in_its_own_key_order() -> None:
    space = _dict_space()
    # metadata.json is written with sorted keys: the order must survive that.
    restored = space_from_json(json.loads(json.dumps(space_to_json(space), sort_keys=True)))
    assert list(restored.spaces) == ["pos", "mode", "grid", "flags"]
    assert restored == space
    space.seed(3)
    sample = space.sample()
    np.testing.assert_array_equal(
        gym.spaces.flatten(restored, sample), gym.spaces.flatten(space, sample)
    )


def test_colliding_input_names_and_unsupported_leaves_are_one_line_errors() -> None:
    colliding = gym.spaces.Dict([("a b", gym.spaces.Discrete(2)), ("a_b", gym.spaces.Discrete(2))])
    with pytest.raises(IncompatibleSpaceError, match="observation_a_b twice; rename the Dict"):
        env_observation_inputs(colliding)
    with pytest.raises(IncompatibleSpaceError, match="take Box, Discrete, MultiDiscrete"):
        env_observation_inputs(gym.spaces.Dict({"text": gym.spaces.Text(5)}))


class DictObservationEnv(gym.Env):
    """Observations of :func:`_dict_space`; two discrete actions; 5-step episodes."""

    def __init__(self) -> None:
        self.observation_space = _dict_space()
        self.action_space = gym.spaces.Discrete(2)
        self._t = 0

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        self._t = 0
        return self.observation_space.sample(), {}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict]:
        self._t += 1
        return self.observation_space.sample(), float(action), False, self._t >= 5, {}


if DICT_ENV_ID not in gym.registry:
    gym.register(DICT_ENV_ID, entry_point=DictObservationEnv)


FRESH_PROCESS_CODE = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    for job in json.loads(sys.argv[1]):
        model = tf.saved_model.load(job["export_dir"])
        metadata = json.loads(model.metadata()["metadata"].numpy().decode())
        with np.load(job["inputs"]) as data:
            names = [entry["name"] for entry in metadata["env_observation_inputs"]]
            inputs = {name: tf.constant(data[name]) for name in names}
        flat = tf.constant(np.load(job["flat"]))
        np.savez(
            job["result"],
            env_action=model.signatures["env_action"](**inputs)["action"].numpy(),
            action=model.signatures["action"](observation=flat)["action"].numpy(),
            env_value=model.signatures["env_value"](**inputs)["value"].numpy(),
            value=model.signatures["value"](observation=flat)["value"].numpy(),
            env_sample=model.signatures["env_sample"](**inputs)["action"].numpy(),
        )
    assert "trpo_tf" not in sys.modules and "gymnasium" not in sys.modules
    print("ok")
    """
)


ENV_IDS = (DICT_ENV_ID, "FrozenLake-v1", "CartPole-v1")


@pytest.fixture(scope="module")
def env_exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list]]:
    """Per env id: an export of an untrained agent, and 64 env observations."""
    root = tmp_path_factory.mktemp("env_exports")
    exports = {}
    for env_id in ENV_IDS:
        spec = describe(env_id, make_env_fn(env_id))
        config = experiment_from_dict(
            {"name": "env-obs", "env": {"id": env_id, "normalize_obs": True}, "seed": 1}
        )
        agent = Agent.build(config, spec.observation_dim, spec.action_space)
        output = agent.policy.network.get_layer("output")
        output.kernel.assign(output.kernel * 150.0)  # actions that differ between states
        space = spec.env_observation_space
        space.seed(11)
        samples = [space.sample() for _ in range(64)]
        exports[env_id] = (export_savedmodel(agent, config, spec, root / env_id), samples)
    return exports


def test_env_signatures_act_on_env_observations_in_a_fresh_process(
    env_exports: dict[str, tuple[Path, list]], tmp_path: Path
) -> None:
    jobs, expected_inputs = [], {}
    for env_id, (export_dir, samples) in env_exports.items():
        metadata = json.loads((export_dir / METADATA_FILE).read_text())
        space = space_from_json(metadata["env_observation_space"])
        assert space == describe(env_id, make_env_fn(env_id)).env_observation_space
        stem = tmp_path / env_id
        np.savez(f"{stem}_inputs.npz", **_leaf_batches(space, samples))
        flat = np.stack([gym.spaces.flatten(space, s) for s in samples]).astype(np.float32)
        np.save(f"{stem}_flat.npy", flat)
        jobs.append(
            {
                "export_dir": str(export_dir),
                "inputs": f"{stem}_inputs.npz",
                "flat": f"{stem}_flat.npy",
                "result": f"{stem}_result.npz",
            }
        )
        expected_inputs[env_id] = (metadata["env_observation_inputs"], space)
    completed = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_CODE, json.dumps(jobs)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    names = [entry["name"] for entry in expected_inputs[DICT_ENV_ID][0]]
    assert names == [
        "observation_pos",
        "observation_mode",
        "observation_grid",
        "observation_flags_0",
        "observation_flags_1",
    ]
    assert expected_inputs[DICT_ENV_ID][0][0] == {
        "name": "observation_pos",
        "shape": [None, 2, 3],
        "dtype": "float32",
    }
    assert expected_inputs["FrozenLake-v1"][0] == [
        {"name": "observation", "shape": [None], "dtype": "int64"}
    ]
    for env_id, job in zip(expected_inputs, jobs, strict=True):
        with np.load(job["result"]) as result:
            np.testing.assert_array_equal(result["env_action"], result["action"])
            np.testing.assert_array_equal(result["env_value"], result["value"])
            assert len(np.unique(result["action"], axis=0)) > 1, env_id
            assert result["env_sample"].shape == result["action"].shape


def _stack(space: gym.Space, samples: list) -> Any:
    """A batch of env observations as a vector env returns them (dicts of arrays)."""
    if isinstance(space, gym.spaces.Dict):
        return {k: _stack(c, [s[k] for s in samples]) for k, c in space.spaces.items()}
    if isinstance(space, gym.spaces.Tuple):
        return tuple(_stack(c, [s[i] for s in samples]) for i, c in enumerate(space.spaces))
    return np.stack([np.asarray(s) for s in samples])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_predict_takes_one_env_observation_or_a_batch(
    env_exports: dict[str, tuple[Path, list]], env_id: str
) -> None:
    export_dir, samples = env_exports[env_id]
    policy = load_policy(export_dir)
    space = space_from_json(policy.metadata["env_observation_space"])
    batch = policy.predict(_stack(space, samples))
    flat = np.stack([gym.spaces.flatten(space, s) for s in samples]).astype(np.float32)
    np.testing.assert_array_equal(batch, policy.act(flat))
    assert batch.shape == (64,) and len(np.unique(batch)) > 1  # Discrete actions
    for index in (0, 5):
        one = policy.predict(samples[index])
        assert np.shape(one) == () and one == batch[index]
    sampled = policy.predict(_stack(space, samples), deterministic=False)
    action_space = space_from_json(policy.metadata["action_space"])
    assert sampled.shape == (64,) and all(action_space.contains(a) for a in sampled)


def test_load_policy_finds_a_runs_export_and_names_bad_observations(
    env_exports: dict[str, tuple[Path, list]], tmp_path: Path
) -> None:
    export_dir, samples = env_exports[DICT_ENV_ID]
    run_dir = tmp_path / "run"
    shutil.copytree(export_dir, run_dir / "export")
    policy = load_policy(run_dir)
    assert policy.predict(samples[0]) == load_policy(export_dir).predict(samples[0])
    with pytest.raises(IncompatibleSpaceError, match="observation has no 'grid'"):
        policy.predict({k: v for k, v in samples[0].items() if k != "grid"})
    wrong = dict(samples[0], pos=np.zeros((3, 2), np.float32))
    with pytest.raises(IncompatibleSpaceError, match=r"observation_pos has shape \(3, 2\)"):
        policy.predict(wrong)
    with pytest.raises(RunDirError, match="no saved_model.pb"):
        load_policy(tmp_path / "nothing")
    unexported = tmp_path / "unexported"
    unexported.mkdir()
    (unexported / "config.yaml").write_text("name: x\n")
    with pytest.raises(RunDirError, match="has no export yet; write one with `trpo-tf export"):
        load_policy(unexported)


def test_predict_on_an_export_without_env_signatures_says_to_export_again(
    env_exports: dict[str, tuple[Path, list]], tmp_path: Path
) -> None:
    export_dir, samples = env_exports["CartPole-v1"]
    older = tmp_path / "older"
    shutil.copytree(export_dir, older)
    metadata = json.loads((older / METADATA_FILE).read_text())
    del metadata["env_observation_inputs"], metadata["env_observation_space"]
    (older / METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(RunDirError, match="export the run again with `trpo-tf export RUN_DIR`"):
        load_policy(older).predict(samples[0])


def test_an_env_space_the_env_signatures_cannot_take_still_exports_flattened(
    tmp_path: Path,
) -> None:
    from trpo_tf.envs import EnvSpec

    own = gym.spaces.Dict({"pos": gym.spaces.Box(-1.0, 1.0, (3,)), "name": gym.spaces.Text(4)})
    flat = gym.spaces.Box(-np.inf, np.inf, (7,), np.float32)
    spec = EnvSpec("TextObs-v0", 7, gym.spaces.Discrete(2), flat, own)
    config = experiment_from_dict({"name": "text-obs", "env": {"id": "CartPole-v1"}})
    agent = Agent.build(config, 7, spec.action_space)
    policy = load_policy(export_savedmodel(agent, config, spec, tmp_path / "export"))
    assert "env_action" not in policy.module.signatures
    assert "env_observation_space" not in policy.metadata
    assert policy.act(np.zeros((2, 7), np.float32)).shape == (2,)
    with pytest.raises(RunDirError, match="no env_action signature: cannot export env obs"):
        policy.predict({"pos": np.zeros(3, np.float32), "name": "ab"})


def test_a_factory_that_flattens_itself_is_served_what_its_env_returns() -> None:
    def flattened_dict_env() -> gym.Env:
        return gym.wrappers.FlattenObservation(DictObservationEnv())

    spec = describe("self-flattening", flattened_dict_env)
    assert spec.env_observation_space == spec.observation_space  # what env.step returns
    spec = describe(DICT_ENV_ID, make_env_fn(DICT_ENV_ID))
    assert spec.env_observation_space == _dict_space()


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
@pytest.mark.parametrize("env_id", [DICT_ENV_ID, "FrozenLake-v1"])
def test_tflite_of_env_action_takes_env_observations(
    env_exports: dict[str, tuple[Path, list]], env_id: str, tmp_path: Path
) -> None:
    export_dir, samples = env_exports[env_id]
    export_tflite(export_dir, tmp_path / TFLITE_FILE)
    interpreter = tf.lite.Interpreter(model_path=str(tmp_path / ENV_TFLITE_FILE))
    runner = interpreter.get_signature_runner()
    metadata = json.loads((export_dir / METADATA_FILE).read_text())
    space = space_from_json(metadata["env_observation_space"])
    batches = _leaf_batches(space, samples)
    inputs = {
        e["name"]: batches[e["name"]].astype(e["dtype"]) for e in metadata["env_observation_inputs"]
    }
    loaded = tf.saved_model.load(str(export_dir))
    expected = loaded.signatures["env_action"](**{k: tf.constant(v) for k, v in inputs.items()})
    np.testing.assert_array_equal(runner(**inputs)["action"], expected["action"].numpy())
