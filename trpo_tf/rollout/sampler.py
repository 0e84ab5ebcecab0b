"""Synchronous sampler: steps a vector env with the current policy."""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import EzPickle

from trpo_tf.errors import EnvRuntimeError, NormalizerOverflowError, TrpoTfError
from trpo_tf.interfaces import DistributionHead
from trpo_tf.normalization import ObservationNormalizer, RewardNormalizer
from trpo_tf.rollout.env_checks import (
    NonFiniteGuard,
    bad_reward,
    check_reward_array,
    env_raised,
    in_env,
    is_number,
)
from trpo_tf.rollout.episodes import EpisodeCounter
from trpo_tf.types import Rollout

if TYPE_CHECKING:  # keeps this module free of TensorFlow imports
    from trpo_tf.rollout.actor import Actor


def reset_rows(state: tuple[np.ndarray, ...], starts: np.ndarray) -> tuple[np.ndarray, ...]:
    """``state`` with the rows where ``starts [n]`` is true set to zeros (new episodes)."""
    if not starts.any():
        return state
    return tuple(np.where(starts[:, None], np.float32(0), part) for part in state)


class SyncSampler:
    """Collects ``T = steps_per_iteration / n_envs`` steps from every env.

    The environments persist across iterations (episodes continue where the last
    rollout stopped); episode returns are accounted in raw reward units.

    An env that raises in ``step``/``reset`` or returns a reward that is not a number
    stops the run with an :class:`~trpo_tf.errors.EnvRuntimeError`; values that are not
    finite in float32 (the dtype they are stored in) with a
    :class:`~trpo_tf.errors.NonFiniteEnvError` unless ``clip_nonfinite``.
    """

    def __init__(
        self,
        envs: gym.vector.VectorEnv,
        env_name: str,
        actor: Actor,
        head: DistributionHead,
        steps_per_env: int,
        observation_normalizer: ObservationNormalizer,
        reward_normalizer: RewardNormalizer,
        clip_nonfinite: bool,
        seed: int,
    ) -> None:
        self.envs = envs
        self.env_name = env_name
        self.actor = actor
        self.head = head
        self.steps_per_env = steps_per_env
        self.obs_norm = observation_normalizer
        self.reward_norm = reward_normalizer
        self.guard = NonFiniteGuard(env_name, clip_nonfinite)
        self.n_envs = envs.num_envs
        self.seed = seed
        self.total_env_steps = 0
        raw = self._reset_all(seed)
        envs.action_space.seed(seed)
        self._raw_obs = self._flat(self.guard(raw, "observation", 0))
        self.episodes = EpisodeCounter(self.n_envs)
        # A recurrent actor's state per env, carried across iterations, and which envs
        # begin an episode at their next observation.
        self.recurrent = bool(getattr(actor, "recurrent", False))
        self._policy_state = actor.initial_state(self.n_envs) if self.recurrent else ()
        self._episode_start = np.ones(self.n_envs, bool)

    def _flat(self, observations: np.ndarray, step: int = 0) -> np.ndarray:
        """``[n_envs, obs_dim]`` float64; an observation of another size is one line."""
        flat = np.asarray(observations, np.float64).reshape(self.n_envs, -1)
        expected = getattr(self, "_obs_dim", None)
        if expected is None:  # the first reset fixes the size every later one must have
            space = self.envs.single_observation_space
            shape = getattr(space, "shape", None)
            expected = int(np.prod(shape)) if shape else flat.shape[1]
            self._obs_dim = expected
        if flat.shape[1] != expected:
            raise EnvRuntimeError(
                f"environment '{self.env_name}' returned observations of "
                f"{flat.shape[1]} values at env step {step}, but its observation space "
                f"{self.envs.single_observation_space} has {expected}; fix the environment "
                "or its observation_space"
            )
        return flat

    def _reset_all(self, seed: int) -> np.ndarray:
        try:
            raw, _ = self.envs.reset(seed=seed)
        except TrpoTfError:
            raise
        except Exception as error:  # noqa: BLE001 - any env failure becomes one line
            raise env_raised(self.env_name, "reset()", error, self.total_env_steps) from error
        return raw

    def _step(
        self, env_actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Any]:
        """One step of every env with same-step autoreset.

        Returns (next observations, rewards, terminated, truncated, final
        observations indexable by env). A synchronous vector env is stepped env by
        env here: the vector wrapper's per-step info merging costs more than a
        cheap env's own step, and only the final observations are needed from it.
        """
        step = self.total_env_steps + self.n_envs  # as counted once this vector step is done
        if not isinstance(self.envs, gym.vector.SyncVectorEnv):
            try:
                raw_next, reward, term, trunc, info = self.envs.step(env_actions)
            except TrpoTfError:
                raise
            except Exception as error:  # noqa: BLE001 - any env failure becomes one line
                where = f"env.vector: {type(self.envs).__name__}"
                raise env_raised(self.env_name, "step()", error, step, where) from error
            reward = check_reward_array(self.env_name, reward, step)
            return raw_next, reward, term, trunc, info.get("final_obs")
        n = self.n_envs
        observations: list[Any] = [None] * n
        rewards = np.empty(n, np.float64)
        terminated = np.zeros(n, bool)
        truncated = np.zeros(n, bool)
        finals: dict[int, Any] = {}
        for i, env in enumerate(self.envs.envs):
            call = "step()"
            try:
                observation, reward, term, trunc, _ = env.step(env_actions[i])
                if not is_number(reward):
                    raise bad_reward(self.env_name, reward, step, f"env index {i}")
                rewards[i] = reward
                if term or trunc:
                    terminated[i], truncated[i] = term, trunc
                    if trunc:
                        finals[i] = observation
                    call = "reset()"
                    observation, _ = env.reset()
            except TrpoTfError:
                raise
            except Exception as error:  # noqa: BLE001 - any env failure becomes one line
                raise env_raised(self.env_name, call, error, step, f"env index {i}") from error
            observations[i] = observation
        return np.stack(observations), rewards, terminated, truncated, finals

    def collect(self, policy_version: int) -> Rollout:
        """Run ``steps_per_env`` vector steps with the actor's current weights."""
        T, N = self.steps_per_env, self.n_envs
        obs_dim = self._raw_obs.shape[1]
        observations = np.zeros((T, N, obs_dim), np.float32)
        final_observations = np.zeros((T, N, obs_dim), np.float32)
        actions = np.zeros((T, N, *self.head.action_shape), self.head.action_dtype.as_numpy_dtype)
        behavior_log_prob = np.zeros((T, N), np.float32)
        behavior_params = np.zeros((T, N, self.head.param_dim), np.float32)
        rewards = np.zeros((T, N), np.float32)
        raw_rewards = np.zeros((T, N), np.float32)
        terminated = np.zeros((T, N), bool)
        truncated = np.zeros((T, N), bool)
        episode_starts = np.zeros((T, N), bool)
        policy_states = tuple(np.zeros((T, *part.shape), np.float32) for part in self._policy_state)

        # A normalizer knows neither the env nor the step: its overflow is named here.
        try:
            obs = self.obs_norm(self._raw_obs, update=True)
            for t in range(T):
                observations[t] = obs
                episode_starts[t] = self._episode_start
                if self.recurrent:
                    state = reset_rows(self._policy_state, self._episode_start)
                    for stored, part in zip(policy_states, state, strict=True):
                        stored[t] = part
                    action, log_prob, params, self._policy_state = self.actor.sample(obs, state)
                else:
                    action, log_prob, params = self.actor.sample(obs)
                actions[t], behavior_log_prob[t], behavior_params[t] = action, log_prob, params
                raw_next, reward, term, trunc, final_obs = self._step(
                    self.head.to_env_action(action)
                )
                self.total_env_steps += N
                step = self.total_env_steps
                reward = self.guard(np.asarray(reward, np.float64), "reward", step)
                raw_next = self._flat(self.guard(raw_next, "observation", step), step)
                done = np.logical_or(term, trunc)
                self._episode_start = done
                raw_rewards[t] = reward
                rewards[t] = self.reward_norm(reward, done)
                terminated[t], truncated[t] = term, trunc

                self.episodes.add(reward)
                if done.any():
                    for i in np.flatnonzero(done):
                        self.episodes.end(i)
                    if trunc.any():
                        ended = np.flatnonzero(trunc)
                        final = np.stack(
                            [np.asarray(final_obs[i], np.float64).reshape(-1) for i in ended]
                        )
                        final = self.guard(final, "final observation", step, ended)
                        final_observations[t, trunc] = self.obs_norm(final)
                self._raw_obs = raw_next
                obs = self.obs_norm(raw_next, update=t + 1 < T)
        except NormalizerOverflowError as error:
            raise in_env(error, self.env_name, self.total_env_steps) from None

        episode_returns, episode_lengths = self.episodes.drain()
        return Rollout(
            observations=observations,
            actions=actions,
            rewards=rewards,
            raw_rewards=raw_rewards,
            terminated=terminated,
            truncated=truncated,
            final_observations=final_observations,
            last_observations=obs,
            behavior_log_prob=behavior_log_prob,
            behavior_params=behavior_params,
            policy_version=np.full((T, N), policy_version, np.int64),
            episode_returns=episode_returns,
            episode_lengths=episode_lengths,
            nonfinite_replaced=self.guard.replaced,
            episode_starts=episode_starts,
            policy_states=policy_states,
        )

    def policy_updated(self, policy_version: int) -> None:
        """Nothing to do: the actor is synced by the learner before the next collect."""

    def state(self) -> dict:
        """Everything needed to continue stepping exactly where this sampler is.

        Sub-environments of a synchronous vector env are pickled with their RNGs;
        when that is impossible (async envs, unpicklable simulators) ``envs`` is
        None and a resumed run starts fresh episodes instead.
        """
        envs = None
        # EzPickle envs (MuJoCo, Box2D) pickle their constructor arguments, not their
        # state: unpickling would give fresh, un-reset envs, so they count as lost.
        if isinstance(self.envs, gym.vector.SyncVectorEnv) and not any(
            isinstance(env.unwrapped, EzPickle) for env in self.envs.envs
        ):
            try:
                envs = pickle.dumps(self.envs.envs)
            except Exception:  # noqa: BLE001 - any env may refuse to pickle
                envs = None
        return {
            "raw_obs": self._raw_obs,
            **self.episodes.state(),
            "total_env_steps": self.total_env_steps,
            "nonfinite_replaced": self.guard.replaced,
            "envs": envs,
            "policy_state": tuple(self._policy_state),
            "episode_start": self._episode_start,
        }

    def load_state(self, state: dict) -> bool:
        """Inverse of :meth:`state`; returns whether the env state was restored."""
        self.total_env_steps = int(state["total_env_steps"])
        self.guard.replaced = int(state["nonfinite_replaced"])
        if state["envs"] is None:
            raw = self._reset_all(self.seed + self.total_env_steps)
            self._raw_obs = self._flat(self.guard(raw, "observation", self.total_env_steps))
            self.episodes.discard()
            self._episode_start = np.ones(self.n_envs, bool)  # and the policy's memory
            return False
        for env in self.envs.envs:
            env.close()
        self.envs.envs = pickle.loads(state["envs"])
        self._raw_obs = state["raw_obs"]
        self.episodes.load_state(state)
        if self.recurrent and "policy_state" in state:
            self._policy_state = tuple(
                np.asarray(part, np.float32) for part in state["policy_state"]
            )
            self._episode_start = np.asarray(state["episode_start"], bool)
        else:  # a checkpoint without the policy's memory: it restarts with the episodes
            self._episode_start = np.ones(self.n_envs, bool)
        return True

    def close(self) -> None:
        self.envs.close()
