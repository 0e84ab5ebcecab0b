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

from trpo_tf.errors import IncompatibleSpaceError, RunDirError, TrpoTfError
from trpo_tf.export.metadata import METADATA_FILE
from trpo_tf.export.module import signature_state_names
from trpo_tf.export.observations import observation_leaves


def is_export_dir(path: str | Path) -> bool:
    """True when ``path`` holds an exported SavedModel (``saved_model.pb``)."""
    return (Path(path) / "saved_model.pb").is_file()


class PolicyStateError(TrpoTfError, ValueError):
    """A recurrent export was asked to act on a batch its carried state does not fit."""


class LoadedExport:
    """An exported policy loaded for acting in its environment.

    A recurrent policy's export (``lstm``, ``gru``) acts with a memory: :meth:`predict`
    and :meth:`act` keep the policy's state between calls, one row per observation of
    the batch, starting from the export's ``initial_state``. Tell them where an episode
    begins with ``episode_start`` (those rows restart from the initial state before
    acting), or forget every row with :meth:`reset`. The state belongs to one stream of
    observations: use one ``LoadedExport`` per stream (or the SavedModel's functional
    signatures, which take and return the state).

    Attributes:
        metadata: the export's metadata dict.
        module: the loaded SavedModel.
        state_names: the policy state inputs of a recurrent policy's export
            (``policy_state_0``, ...); ``()`` for a memoryless policy, also when only
            the value network is recurrent (acting never needs V's ``value_state_i``).
        state: the carried state, ``{name: [batch, size]}`` float32, or None before the
            first call and after :meth:`reset`.
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
        self.state_names = tuple(signature_state_names(self._action))
        self.state: dict[str, np.ndarray] | None = None

    @property
    def recurrent(self) -> bool:
        """Whether the policy carries a state between steps (a recurrent V alone does not
        count: :meth:`predict` acts with the policy only)."""
        return bool(self.state_names)

    def initial_state(self, batch_size: int) -> dict[str, np.ndarray]:
        """The policy state at an episode's start, ``{name: [batch_size, size]}`` (``{}``
        for a memoryless policy)."""
        if not self.recurrent:
            return {}
        initial = self.module.signatures["initial_state"](
            batch_size=tf.constant(batch_size, tf.int32)
        )
        return {name: initial[name].numpy() for name in self.state_names}

    def reset(self) -> None:
        """Forget the carried state: the next call starts every row from the initial state,
        at any batch size. No effect for a memoryless policy."""
        self.state = None

    def _state_before(self, batch: int, episode_start: Any) -> dict[str, np.ndarray]:
        """The state to act from for ``batch`` observations, rows restarted at
        ``episode_start`` (a bool, or ``[batch]`` bools; None: no row starts)."""
        starts = np.zeros(batch, bool)
        if episode_start is not None:
            mask = np.asarray(episode_start, bool).reshape(-1)
            if mask.size not in (1, batch):
                raise PolicyStateError(
                    f"episode_start has {mask.size} entries for a batch of {batch} "
                    "observations; pass one bool per observation (or a single bool)"
                )
            starts = np.broadcast_to(mask, (batch,))
        if self.state is None or starts.all():
            return self.initial_state(batch)
        carried = len(self.state[self.state_names[0]])
        if carried != batch:
            raise PolicyStateError(
                f"this recurrent policy carries the state of {carried} observation stream(s) "
                f"but got a batch of {batch}; call reset() before acting on a batch of another "
                "size (or pass episode_start=True for every row)"
            )
        if not starts.any():
            return self.state
        initial = self.initial_state(batch)
        return {
            name: np.where(starts[:, None], initial[name], self.state[name])
            for name in self.state_names
        }

    def _call(
        self, signature: str, inputs: dict[str, tf.Tensor], batch: int, episode_start: Any
    ) -> np.ndarray:
        """``signature``'s actions for ``inputs``; a recurrent policy acts from (and
        then carries) its state."""
        if not self.recurrent:
            return self.module.signatures[signature](**inputs)["action"].numpy()
        state = self._state_before(batch, episode_start)
        outputs = self.module.signatures[signature](
            **inputs, **{name: tf.constant(value) for name, value in state.items()}
        )
        self.state = {name: outputs[name].numpy() for name in self.state_names}
        return outputs["action"].numpy()

    def act(self, observations: np.ndarray, episode_start: Any = None) -> np.ndarray:
        """Raw flattened observations ``[n, obs_dim]`` -> env-ready actions.

        Args:
            observations: as above.
            episode_start: recurrent policy only: ``[n]`` bools (or one bool), true
                where the observation begins an episode; those rows act from the
                initial state. Ignored for a memoryless policy.

        Raises:
            PolicyStateError: a recurrent policy got another batch size than its
                carried state without a :meth:`reset`.
        """
        batch = np.asarray(observations, np.float32).reshape(len(observations), -1)
        return self._call("action", {"observation": tf.constant(batch)}, len(batch), episode_start)

    def step(
        self, observations: np.ndarray, state: tuple[np.ndarray, ...]
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Functional acting of a recurrent export: flattened observations ``[n, obs_dim]``
        and a state (one ``[n, size]`` array per :attr:`state_names`) -> (env-ready
        actions, next state). Leaves :attr:`state` alone."""
        outputs = self._action(
            observation=tf.constant(
                np.asarray(observations, np.float32).reshape(len(observations), -1)
            ),
            **{name: tf.constant(part) for name, part in zip(self.state_names, state, strict=True)},
        )
        return outputs["action"].numpy(), tuple(outputs[name].numpy() for name in self.state_names)

    def predict(
        self, observation: Any, deterministic: bool = True, episode_start: Any = None
    ) -> np.ndarray:
        """Env-ready action(s) for observation(s) exactly as the environment returns them.

        One observation (an int for a Discrete space, a ``[*shape]`` array for a Box, a
        dict for a Dict space) gives one action; a batch (every leaf with a leading
        batch axis, as a vector env returns them) gives ``[batch, ...]`` actions.

        A recurrent policy keeps its state between calls (one row per observation):
        pass ``episode_start`` where an episode begins, or call :meth:`reset`.

        Args:
            observation: as above.
            deterministic: the mode action (``env_action``), else a sample
                (``env_sample``).
            episode_start: recurrent policy only: one bool for one observation, ``[batch]``
                bools for a batch (a vector env's ``terminated | truncated`` of the step
                that returned these observations, with same-step autoreset), true where
                the observation is the first of an episode: that row acts from the
                initial state. None: every row continues (the first call, and the first
                after :meth:`reset`, start from the initial state anyway). Ignored for a
                memoryless policy.

        Raises:
            RunDirError: the export has no ``env_*`` signatures (written before they
                existed: export the run again; or the env's observation space has a
                leaf they cannot take, named in the message).
            IncompatibleSpaceError: ``observation`` does not match the env's
                observation space.
            PolicyStateError: a recurrent policy got another batch size than its
                carried state without a :meth:`reset` (or ``episode_start`` all true).
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
        batch = int(next(iter(inputs.values())).shape[0])
        actions = self._call(signature, inputs, batch, episode_start)
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
    as the environment returns them (:meth:`LoadedExport.predict`; a recurrent policy
    keeps its state between calls: ``predict(observation, episode_start=...)`` and
    :meth:`LoadedExport.reset` restart it).

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
    """Deterministic returns ``[episodes]`` of an exported policy's ``action``.

    A recurrent policy keeps one state per env, from ``initial_state`` at each episode's
    start (:class:`~trpo_tf.evaluation.RecurrentAct`, which resets a finished env's row
    to zeros: the built-in ``lstm``/``gru`` initial state).
    """
    from trpo_tf.evaluation import RecurrentAct, evaluate
    from trpo_tf.normalization import ObservationNormalizer

    loaded = LoadedExport(export_dir)
    passthrough = ObservationNormalizer((loaded.metadata["observation_dim"],), enabled=False)
    env = loaded.metadata["env"]
    act: Any = loaded.act
    if loaded.recurrent:
        act = RecurrentAct(
            loaded.step, lambda n: tuple(loaded.initial_state(n)[k] for k in loaded.state_names)
        )
    return evaluate(
        loaded.env_fn(),
        act,
        _EnvReadyActions(),
        passthrough,
        episodes,
        seed,
        clip_nonfinite=bool(env.get("clip_nonfinite", False)),
        env_name=env["id"],
    )
