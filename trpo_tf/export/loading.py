"""Using an export without the run: load it, act with it, evaluate it."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import tensorflow as tf

from trpo_tf.errors import IncompatibleSpaceError, RunDirError
from trpo_tf.export.observations import observation_leaves
from trpo_tf.export.writer import METADATA_FILE


def is_export_dir(path: str | Path) -> bool:
    """True when ``path`` holds an exported SavedModel (``saved_model.pb``)."""
    return (Path(path) / "saved_model.pb").is_file()


class LoadedExport:
    """An exported policy loaded for acting in its environment.

    Attributes:
        metadata: the export's metadata dict.
        module: the loaded SavedModel.
    """

    def __init__(self, directory: str | Path) -> None:
        directory = Path(directory)
        if not is_export_dir(directory):
            raise RunDirError(f"{directory} is not an exported policy: no saved_model.pb in it")
        self.module = tf.saved_model.load(str(directory))
        metadata_file = directory / METADATA_FILE
        if metadata_file.is_file():
            self.metadata = json.loads(metadata_file.read_text())
        else:
            self.metadata = json.loads(self.module.metadata()["metadata"].numpy().decode())
        self._action = self.module.signatures["action"]

    def act(self, observations: np.ndarray) -> np.ndarray:
        """Raw flattened observations ``[n, obs_dim]`` -> env-ready actions."""
        batch = np.asarray(observations, np.float32).reshape(len(observations), -1)
        return self._action(observation=tf.constant(batch))["action"].numpy()

    def predict(self, observation: Any, deterministic: bool = True) -> np.ndarray:
        """Env-ready action(s) for observation(s) exactly as the environment returns them.

        One observation (an int for a Discrete space, a ``[*shape]`` array for a Box, a
        dict for a Dict space) gives one action; a batch (every leaf with a leading
        batch axis, as a vector env returns them) gives ``[batch, ...]`` actions.

        Args:
            observation: as above.
            deterministic: the mode action (``env_action``), else a sample
                (``env_sample``).

        Raises:
            RunDirError: the export has no ``env_*`` signatures (written before they
                existed: export the run again; or the env's observation space has a
                leaf they cannot take, named in the message).
            IncompatibleSpaceError: ``observation`` does not match the env's
                observation space.
        """
        if "env_observation_inputs" not in self.metadata:
            reason = self.metadata.get("env_signatures_unavailable")
            raise RunDirError(
                f"this export has no env_action signature: {reason}; pass flattened "
                "observations to act()"
                if reason
                else "this export has no env_action signature (written by an older "
                "trpo_tf); export the run again with `trpo-tf export RUN_DIR`"
            )
        leaves = observation_leaves(self._env_observation_space, observation)
        first_space, first = leaves[0]
        single = np.ndim(first) == len(first_space.shape)
        inputs = {}
        for entry, (leaf_space, leaf) in zip(
            self.metadata["env_observation_inputs"], leaves, strict=True
        ):
            array = np.asarray(leaf)[None] if single else np.asarray(leaf)
            if array.shape[1:] != leaf_space.shape:
                raise IncompatibleSpaceError(
                    f"observation {entry['name']} has shape {np.shape(leaf)}; the env's "
                    f"observation space {leaf_space} needs {leaf_space.shape} or a batch of them"
                )
            inputs[entry["name"]] = tf.constant(array, tf.as_dtype(entry["dtype"]))
        signature = "env_action" if deterministic else "env_sample"
        actions = self.module.signatures[signature](**inputs)["action"].numpy()
        return actions[0] if single else actions

    @functools.cached_property
    def _env_observation_space(self) -> gym.Space:
        """The env's own observation space from the metadata (read once: predict() is
        called per env step)."""
        from trpo_tf.export.spaces import space_from_json

        return space_from_json(self.metadata["env_observation_space"])

    def env_fn(self, **extra_kwargs: Any) -> Callable[[], gym.Env]:
        """Constructor of the export's environment (metadata env id + kwargs)."""
        from trpo_tf.envs import make_env_fn

        env = self.metadata["env"]
        return make_env_fn(
            env["id"], {**env.get("kwargs", {}), **extra_kwargs}, env.get("max_episode_steps")
        )


def load_policy(path: str | Path) -> LoadedExport:
    """The exported policy of a run directory (``RUN_DIR/export``) or an export directory.

    ``load_policy("runs/cartpole-s0-...").predict(observation)`` acts on observations
    as the environment returns them (:meth:`LoadedExport.predict`).

    Raises:
        RunDirError: ``path`` holds no export.
    """
    path = Path(path)
    if is_export_dir(path / "export"):
        return LoadedExport(path / "export")
    if (path / "config.yaml").is_file() and not is_export_dir(path):
        raise RunDirError(
            f"run directory {path} has no export yet; write one with `trpo-tf export {path}`"
        )
    return LoadedExport(path)


class _EnvReadyActions:
    """``to_env_action`` for actions the export already made env-ready."""

    def to_env_action(self, actions: np.ndarray) -> np.ndarray:
        return actions


def evaluate_export(export_dir: str | Path, episodes: int, seed: int) -> np.ndarray:
    """Deterministic returns ``[episodes]`` of an exported policy's ``action``."""
    from trpo_tf.evaluation import evaluate
    from trpo_tf.normalization import ObservationNormalizer

    loaded = LoadedExport(export_dir)
    passthrough = ObservationNormalizer((loaded.metadata["observation_dim"],), enabled=False)
    env = loaded.metadata["env"]
    return evaluate(
        loaded.env_fn(),
        loaded.act,
        _EnvReadyActions(),
        passthrough,
        episodes,
        seed,
        clip_nonfinite=bool(env.get("clip_nonfinite", False)),
        env_name=env["id"],
    )
