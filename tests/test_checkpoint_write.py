"""CheckpointWriter: one compiled call writes what tf.train.Checkpoint.write writes."""

from __future__ import annotations

import types
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.trackable import base as trackable_base

from trpo_tf.checkpoint_write import OBJECT_GRAPH_KEY, CheckpointWriter
from trpo_tf.trainer.adam import FusedAdam


def _objects(seed: int) -> dict:
    """A Keras network, a fused Adam with its slots, a random generator."""
    keras.utils.set_random_seed(seed)
    network = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    optimizer = FusedAdam(0.01)
    optimizer.build(network.trainable_variables)
    gradients = [tf.ones_like(v) * (i + 1) for i, v in enumerate(network.trainable_variables)]
    optimizer.apply_gradients(zip(gradients, network.trainable_variables, strict=True))
    generator = tf.random.Generator.from_seed(seed)
    generator.uniform([2])
    return {"network": network, "optimizer": optimizer, "generator": generator}


def _contents(prefix: str) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(prefix)
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()}


def test_same_files_as_an_eager_write(tmp_path: Path) -> None:
    objects = _objects(0)
    writer = CheckpointWriter(tf.train.Checkpoint(**objects))
    writer.write(str(tmp_path / "compiled" / "tf"))
    assert writer.compiled
    tf.train.Checkpoint(**objects).write(str(tmp_path / "eager" / "tf"))
    compiled = _contents(str(tmp_path / "compiled" / "tf"))
    eager = _contents(str(tmp_path / "eager" / "tf"))
    assert sorted(compiled) == sorted(eager)
    assert OBJECT_GRAPH_KEY in compiled and len(compiled) > 10
    for key, value in eager.items():
        np.testing.assert_array_equal(compiled[key], value, err_msg=key)
    assert sorted(p.name for p in (tmp_path / "compiled").iterdir()) == sorted(
        p.name for p in (tmp_path / "eager").iterdir()
    )


def test_restores_into_fresh_objects(tmp_path: Path) -> None:
    objects = _objects(0)
    writer = CheckpointWriter(tf.train.Checkpoint(**objects))
    prefix = str(tmp_path / "two" / "levels" / "tf")  # missing directories are created
    writer.write(prefix)
    assert writer.compiled
    fresh = _objects(1)
    tf.train.Checkpoint(**fresh).read(prefix).assert_consumed()
    for mine, saved in zip(fresh["network"].variables, objects["network"].variables, strict=True):
        np.testing.assert_array_equal(mine.numpy(), saved.numpy())
    for mine, saved in zip(
        fresh["optimizer"].m + fresh["optimizer"].v,
        objects["optimizer"].m + objects["optimizer"].v,
        strict=True,
    ):
        np.testing.assert_array_equal(mine.numpy(), saved.numpy())
    np.testing.assert_array_equal(
        fresh["generator"].uniform([3]), objects["generator"].uniform([3])
    )


def test_each_write_reads_the_values_of_its_time(tmp_path: Path) -> None:
    weights = tf.Variable([1.0, 2.0])
    writer = CheckpointWriter(tf.train.Checkpoint(weights=weights))
    for step in (1, 2, 3):
        weights.assign([10.0 * step, -step])
        writer.write(str(tmp_path / str(step) / "tf"))
        assert writer.compiled
    for step in (1, 2, 3):
        saved = _contents(str(tmp_path / str(step) / "tf"))
        np.testing.assert_array_equal(
            saved["weights/.ATTRIBUTES/VARIABLE_VALUE"], [10.0 * step, -step]
        )


def test_a_variable_created_after_a_write_is_in_the_next_one(tmp_path: Path) -> None:
    network = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    optimizer = FusedAdam(0.01)
    writer = CheckpointWriter(tf.train.Checkpoint(network=network, optimizer=optimizer))
    writer.write(str(tmp_path / "before" / "tf"))
    optimizer.build(network.trainable_variables)  # creates the moment slots
    optimizer.m[0].assign(tf.fill(optimizer.m[0].shape, 7.0))
    writer.write(str(tmp_path / "after" / "tf"))
    assert writer.compiled
    before, after = (
        _contents(str(tmp_path / "before" / "tf")),
        _contents(str(tmp_path / "after" / "tf")),
    )
    slots = [key for key in after if key.startswith("optimizer/m/")]
    assert len(slots) == 2 and not any(key.startswith("optimizer/m/") for key in before)
    np.testing.assert_array_equal(after["optimizer/m/0/.ATTRIBUTES/VARIABLE_VALUE"], 7.0)


class _PythonNumber(trackable_base.Trackable):
    """A trackable whose saved tensor is made from Python state, not read from a variable."""

    def __init__(self, value: float) -> None:
        self.value = value

    def _serialize_to_tensors(self) -> dict:
        return {"value": tf.constant(self.value)}

    def _restore_from_tensors(self, restored_tensors: dict) -> None:
        self.value = float(restored_tensors["value"].numpy())


def test_a_serializer_that_changed_means_an_eager_write(tmp_path: Path, monkeypatch) -> None:
    import trpo_tf.checkpoint_write as checkpoint_write

    def other_signature(graph_view, object_map=None, call_with_mapped_captures=None):
        return {}, {}, {}, None, "a fifth value"

    changed = types.SimpleNamespace(serialize_graph_view=other_signature)
    monkeypatch.setattr(checkpoint_write, "save_util", changed)
    weights = tf.Variable([4.0])
    writer = CheckpointWriter(tf.train.Checkpoint(weights=weights))
    writer.write(str(tmp_path / "tf"))
    assert not writer.compiled
    restored = tf.Variable([0.0])
    tf.train.Checkpoint(weights=restored).read(str(tmp_path / "tf")).assert_consumed()
    np.testing.assert_array_equal(restored.numpy(), [4.0])


def test_anything_but_variable_reads_is_written_eagerly(tmp_path: Path) -> None:
    number, weights = _PythonNumber(1.5), tf.Variable([3.0])
    writer = CheckpointWriter(tf.train.Checkpoint(number=number, weights=weights))
    writer.write(str(tmp_path / "first" / "tf"))
    assert not writer.compiled
    number.value = 2.5  # a compiled write would have frozen 1.5 into its graph
    writer.write(str(tmp_path / "second" / "tf"))
    restored, restored_weights = _PythonNumber(0.0), tf.Variable([0.0])
    tf.train.Checkpoint(number=restored, weights=restored_weights).read(
        str(tmp_path / "second" / "tf")
    ).assert_consumed()
    assert restored.value == 2.5
    np.testing.assert_array_equal(restored_weights.numpy(), [3.0])


@pytest.mark.parametrize(
    ("env_id", "distribution"),
    [
        ("CartPole-v1", "categorical"),
        ("Pendulum-v1", "diag_gaussian"),
        ("Pendulum-v1", "gaussian_state_std"),
        ("Pendulum-v1", "gsde"),
        ("Pendulum-v1", "beta"),
    ],
)
def test_the_training_state_is_written_compiled(
    tmp_path: Path, env_id: str, distribution: str
) -> None:
    # What train() checkpoints (networks, head, Adam, the update's generator) takes
    # the compiled path on this TensorFlow: if its serializer changed, this fails.
    from trpo_tf.agent import Agent
    from trpo_tf.config import experiment_from_dict
    from trpo_tf.envs.factory import describe, make_env_fn
    from trpo_tf.learner import build_update
    from trpo_tf.train import tf_state

    config = experiment_from_dict(
        {
            "env": {"id": env_id, "n_envs": 2},
            "trainer": {"steps_per_iteration": 64},
            "policy": {"distribution": distribution},
        }
    )
    spec = describe(env_id, make_env_fn(env_id, {}))
    agent = Agent.build(config, spec.observation_dim, spec.action_space)
    update = build_update(config, agent, 64, spec.observation_dim)
    update.value_optimizer.build(agent.value_network.trainable_variables)
    state = tf_state(agent, update, None)
    writer = CheckpointWriter(tf.train.Checkpoint(**state))
    writer.write(str(tmp_path / "tf"))
    assert writer.compiled
    saved = _contents(str(tmp_path / "tf"))
    eager_prefix = tf.train.Checkpoint(**state).write(str(tmp_path / "eager" / "tf"))
    assert sorted(saved) == sorted(_contents(eager_prefix))
    assert any(key.startswith("value_optimizer/v/") for key in saved)
    assert any(key.startswith("update_generator/") for key in saved)
