"""Env observations flattened inside the export's graph, against gymnasium's flatten.

``gymnasium.spaces.flatten`` is what training sees (trpo_tf wraps every env in
``FlattenObservation``), so it is the oracle for each supported space, nested
Dict/Tuple spaces included; then an export's ``env_*`` signatures, loaded in a
fresh TF-only process, must act exactly as its flattened ``action``/``value``.
"""

from __future__ import annotations

import json
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
from trpo_tf.errors import IncompatibleSpaceError
from trpo_tf.export import METADATA_FILE, export_savedmodel, space_from_json, space_to_json
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
    restored = space_from_json(json.loads(json.dumps(space_to_json(space))))
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


def test_env_signatures_act_on_env_observations_in_a_fresh_process(tmp_path: Path) -> None:
    jobs, expected_inputs = [], {}
    for env_id in (DICT_ENV_ID, "FrozenLake-v1", "CartPole-v1"):
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
        stem = tmp_path / env_id
        export_dir = export_savedmodel(agent, config, spec, stem)
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
        metadata = json.loads((export_dir / METADATA_FILE).read_text())
        assert space_from_json(metadata["env_observation_space"]) == space
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
