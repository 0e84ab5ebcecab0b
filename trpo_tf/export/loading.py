"""Using an export without the run: load it, act with it, evaluate it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import tensorflow as tf

from trpo_tf.errors import RunDirError
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

    def env_fn(self, **extra_kwargs: Any) -> Callable[[], gym.Env]:
        """Constructor of the export's environment (metadata env id + kwargs)."""
        from trpo_tf.envs import make_env_fn

        env = self.metadata["env"]
        return make_env_fn(env["id"], {**env.get("kwargs", {}), **extra_kwargs})


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
