"""A rollout worker: steps its own env copies with a policy snapshot, in segments.

Used by :class:`~trpo_tf.rollout.async_runner.AsyncRunner` inside worker
processes and by :class:`~trpo_tf.rollout.ray_runner.RayRunner` as a Ray actor.
This module must never import TensorFlow (directly or through another trpo_tf
module): a worker only needs numpy, gymnasium and the numpy policy.

Faults inside a worker:

* An env whose ``step``/``reset`` raises is closed and rebuilt. Its partial
  episode is thrown away: the rows it had written in the current segment are
  stepped again by the new env, and those discarded steps are counted in
  :attr:`Segment.discarded_steps`. Each failure is one line, sent to the learner
  at once where the transport allows (``report``), else in
  :attr:`Segment.env_errors`. Steps of that episode that went out in earlier
  segments stay valid: there the segment's end bootstraps from V(last
  observation), as for any cut-off segment.
* An env that fails :data:`MAX_CONSECUTIVE_ENV_FAILURES` times without finishing
  an episode in between (or the segment ending) would never let the segment
  finish: that is an :class:`~trpo_tf.errors.EnvRuntimeError` naming its last error.
* A non-finite observation or reward is a user error
  (:class:`~trpo_tf.errors.NonFiniteEnvError`, unless ``clip_nonfinite``), as is
  a reward that is not a number (:class:`~trpo_tf.errors.EnvRuntimeError`); it is
  sent to the learner, which raises it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from trpo_tf.envs.factory import check_distinct_envs
from trpo_tf.errors import EnvRuntimeError, TrpoTfError
from trpo_tf.rollout.env_checks import (
    NonFiniteGuard,
    bad_reward,
    env_raised,
    flat_observation,
    is_number,
    one_line,
)
from trpo_tf.rollout.episodes import EpisodeCounter
from trpo_tf.rollout.numpy_policy import EnvActionMap, PolicySnapshot, SnapshotPolicy
from trpo_tf.rollout.sampler import reset_rows
from trpo_tf.rollout.segment import Segment, WorkerSpec

MAX_CONSECUTIVE_ENV_FAILURES = 5
"""An env that fails this many times without finishing an episode in between is fatal."""


class RolloutWorker:
    """Steps ``k`` envs continuously; :meth:`run_segment` returns the next ``T`` steps.

    Envs are stepped one by one in a plain loop (same-step autoreset, as
    gymnasium's ``SyncVectorEnv`` with ``AutoresetMode.SAME_STEP``) so that one
    env raising neither aborts nor half-steps the others.

    A recurrent β's state is carried per env from segment to segment, as
    :class:`~trpo_tf.rollout.sampler.SyncSampler` carries it from batch to batch: it
    is reset to zeros before the first step of every episode (the first after
    construction, after ``terminated``/``truncated``, and the new env's first after an
    env error), and a new snapshot (:meth:`set_policy`) does not reset it. A new worker
    (a restart) starts every episode, and so every state, afresh.

    Args:
        spec, index, incarnation, snapshot: what to build and act with.
        report: receives each env-failure line as it happens (else the lines go
            out with the next segment).
    """

    def __init__(
        self,
        spec: WorkerSpec,
        index: int,
        incarnation: int,
        snapshot: PolicySnapshot,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.spec = spec
        self.index = index
        self.incarnation = incarnation
        self.report = report
        seeds = np.random.SeedSequence([spec.seed, index, incarnation])
        action_seed, env_seed = seeds.spawn(2)
        self.rng = np.random.default_rng(action_seed)
        self._env_seeds = env_seed.generate_state(spec.n_envs).tolist()
        self.guard = NonFiniteGuard(
            spec.env_name, spec.clip_nonfinite, context=f"rollout worker {index}"
        )
        self.policy = SnapshotPolicy(snapshot)
        self.sequence = 0
        self.env_steps = 0
        self._errors: list[str] = []
        self._discarded = 0
        # Failures of each env since it last finished an episode (or a segment ended).
        self._failures = np.zeros(spec.n_envs, np.int64)
        self.envs: list[gym.Env] = [self._construct() for _ in range(spec.n_envs)]
        check_distinct_envs(self.envs, spec.env_name)
        self.action_map = EnvActionMap(self.envs[0].action_space, self.policy.sampler)
        self.raw_obs = np.stack([self._first_reset(i) for i in range(spec.n_envs)])
        self.episodes = EpisodeCounter(spec.n_envs)
        # A recurrent β's state per env (before the reset of an episode start), and
        # which envs begin an episode at their next observation.
        self.policy_state = self.policy.initial_state(spec.n_envs)
        self.new_episode = np.ones(spec.n_envs, bool)

    def info(self) -> dict[str, Any]:
        """Facts about this worker's process (tests check no TensorFlow got in)."""
        return {
            "pid": os.getpid(),
            "tensorflow_loaded": "tensorflow" in sys.modules,
            "worker": self.index,
            "incarnation": self.incarnation,
        }

    def set_policy(self, snapshot: PolicySnapshot) -> None:
        """Act with ``snapshot`` from the next segment on (the carried state stays)."""
        self.policy = SnapshotPolicy(snapshot)
        sizes = tuple(part.shape[1] for part in self.policy_state)
        if sizes != snapshot.state_sizes:  # another network altogether: start afresh
            self.policy_state = self.policy.initial_state(self.spec.n_envs)
            self.new_episode[:] = True

    def _flat(self, observation: Any, i: int) -> np.ndarray:
        """Env ``i``'s observation, flat; not numeric or of another size: one line."""
        flat = flat_observation(
            observation,
            getattr(self, "_observation_size", None),
            self.spec.env_name,
            self.env_steps,
            f"rollout worker {self.index}, env {i}",
        )
        self._observation_size = flat.size  # the first one fixes the size of all
        return flat

    def _construct(self) -> gym.Env:
        try:
            return self.spec.env_fn()
        except TrpoTfError:
            raise
        except Exception as error:  # noqa: BLE001 - any env failure becomes one line
            raise env_raised(
                self.spec.env_name,
                "its constructor",
                error,
                self.env_steps,
                f"rollout worker {self.index}",
                hint="fix the environment or env.kwargs",
            ) from error

    def _reset(self, i: int, seed: int | None = None) -> np.ndarray:
        observation, _ = self.envs[i].reset(seed=seed)
        flat = self._flat(observation, i)[None]
        return self.guard(flat, "observation", self.env_steps, env_ids=np.asarray([i]))[0]

    def _first_reset(self, i: int) -> np.ndarray:
        try:
            return self._reset(i, seed=self._env_seeds[i])
        except TrpoTfError:
            raise
        except Exception as error:  # noqa: BLE001 - any env failure is recoverable
            return self._rebuild(i, error, "reset()", discarded=0)

    def _env_failed(self, i: int, error: BaseException, where: str, discarded: int) -> None:
        """Count a failure of env ``i``; an :class:`EnvRuntimeError` once it is hopeless."""
        self._failures[i] += 1
        if self._failures[i] >= MAX_CONSECUTIVE_ENV_FAILURES:
            raise EnvRuntimeError(
                f"environment '{self.spec.env_name}' failed {self._failures[i]} times without "
                f"finishing an episode in between (rollout worker {self.index}, env {i}; last: "
                f"{where} raised {one_line(error)}); fix the environment (async workers "
                "rebuild an env that raises only now and then)"
            ) from error
        line = f"worker {self.index}: env {i} raised in {where} ({one_line(error)}); env rebuilt"
        if discarded:
            line += f", {discarded} steps of its partial episode discarded"
        if self.report is not None:
            self.report(line)
        else:
            self._errors.append(line)

    def _rebuild(self, i: int, error: BaseException, where: str, discarded: int) -> np.ndarray:
        """Replace env ``i`` after ``error``; returns its first observation."""
        while True:
            self._env_failed(i, error, where, discarded)
            discarded = 0
            with contextlib.suppress(Exception):  # a broken env may fail to close too
                self.envs[i].close()
            where = "its constructor"
            try:
                self.envs[i] = self.spec.env_fn()
                check_distinct_envs(self.envs, self.spec.env_name)
                self._env_seeds[i] += 1_000_003  # a different episode than the one that failed
                where = "reset()"
                return self._reset(i, seed=self._env_seeds[i])
            except TrpoTfError:
                raise
            except Exception as retry_error:  # noqa: BLE001 - any env failure
                error = retry_error

    def run_segment(self) -> Segment:
        """Step every env ``T`` times (more after env errors) with the current snapshot."""
        T, k = self.spec.segment_length, self.spec.n_envs
        policy = self.policy
        obs_dim = self.raw_obs.shape[1]
        observations = np.zeros((T, k, obs_dim), np.float32)
        raw_observations = np.zeros((T, k, obs_dim), np.float64)
        final_observations = np.zeros((T, k, obs_dim), np.float32)
        raw_rewards = np.zeros((T, k), np.float64)
        terminated = np.zeros((T, k), bool)
        truncated = np.zeros((T, k), bool)
        behavior_log_prob = np.zeros((T, k), np.float32)
        recurrent = policy.recurrent
        episode_starts = np.zeros((T, k), bool)
        policy_states = tuple(np.zeros((T, *part.shape), np.float32) for part in self.policy_state)
        actions = behavior_params = None
        replaced_before = self.guard.replaced
        steps_before = self.env_steps
        row = np.zeros(k, np.int64)  # next row to fill, per env
        episode_start = np.zeros(k, np.int64)  # row where each env's current episode began

        while (row < T).any():
            active = np.flatnonzero(row < T)
            obs = policy.normalize(self.raw_obs[active])
            if recurrent:
                state = reset_rows(
                    tuple(part[active] for part in self.policy_state), self.new_episode[active]
                )
                sampled, log_prob, params, next_state = policy.step(obs, state, self.rng)
            else:
                sampled, log_prob, params = policy.sample(obs, self.rng)
            if actions is None:
                actions = np.zeros((T, k, *sampled.shape[1:]), sampled.dtype)
                behavior_params = np.zeros((T, k, *params.shape[1:]), np.float32)
            env_actions = self.action_map(sampled)
            stepped, results = [], []
            for j, i in enumerate(active):
                try:
                    observation, reward, term, trunc, _ = self.envs[i].step(env_actions[j])
                except TrpoTfError:
                    raise
                except Exception as error:  # noqa: BLE001 - any env failure is recoverable
                    self.env_steps += 1
                    discarded = int(row[i] - episode_start[i]) + 1
                    self._discarded += discarded
                    self.raw_obs[i] = self._rebuild(i, error, "step()", discarded)
                    self.episodes.discard(i)
                    row[i] = episode_start[i]
                    self.new_episode[i] = True  # the rebuilt env's episode, and β's memory
                    continue
                if not is_number(reward):
                    raise bad_reward(
                        self.spec.env_name,
                        reward,
                        self.env_steps + len(stepped) + 1,
                        f"rollout worker {self.index}, env {i}",
                    )
                stepped.append(j)
                results.append((observation, reward, term, trunc))
            if not stepped:
                continue
            self.env_steps += len(stepped)
            js = np.asarray(stepped)
            envs_ = active[js]
            rows = row[envs_]
            observations[rows, envs_] = obs[js]
            raw_observations[rows, envs_] = self.raw_obs[envs_]
            actions[rows, envs_] = sampled[js]
            behavior_log_prob[rows, envs_] = log_prob[js]
            behavior_params[rows, envs_] = params[js]
            if recurrent:
                episode_starts[rows, envs_] = self.new_episode[envs_]
                for stored, carried, used, new in zip(
                    policy_states, self.policy_state, state, next_state, strict=True
                ):
                    stored[rows, envs_] = used[js]
                    carried[envs_] = new[js]
            step = self.env_steps
            rewards = self.guard(
                np.asarray([r[1] for r in results], np.float64), "reward", step, envs_
            )
            next_raw = self.guard(
                np.stack([self._flat(r[0], i) for r, i in zip(results, envs_, strict=True)]),
                "observation",
                step,
                envs_,
            )
            term = np.asarray([bool(r[2]) for r in results])
            trunc = np.asarray([bool(r[3]) for r in results])
            self.new_episode[envs_] = term | trunc
            raw_rewards[rows, envs_] = rewards
            terminated[rows, envs_] = term
            truncated[rows, envs_] = trunc
            self.episodes.add(rewards, envs_)
            for n in np.flatnonzero(term | trunc):
                i, t = envs_[n], rows[n]
                self.episodes.end(i)
                self._failures[i] = 0
                if trunc[n]:  # without autoreset, the step's observation is the true s_{t+1}
                    final_observations[t, i] = policy.normalize(next_raw[n][None])[0]
                try:
                    next_raw[n] = self._reset(i)
                except TrpoTfError:
                    raise
                except Exception as error:  # noqa: BLE001 - the episode itself was complete
                    next_raw[n] = self._rebuild(i, error, "reset()", discarded=0)
                episode_start[i] = t + 1
            self.raw_obs[envs_] = next_raw
            row[envs_] += 1

        self._failures[:] = 0  # every env's rows so far go out with this segment
        errors, self._errors = self._errors, []
        discarded, self._discarded = self._discarded, 0
        episode_returns, episode_lengths = self.episodes.drain()
        segment = Segment(
            worker=self.index,
            sequence=self.sequence,
            policy_version=policy.version,
            observations=observations,
            raw_observations=raw_observations,
            actions=actions,
            raw_rewards=raw_rewards,
            terminated=terminated,
            truncated=truncated,
            final_observations=final_observations,
            last_observations=policy.normalize(self.raw_obs),
            behavior_log_prob=behavior_log_prob,
            behavior_params=behavior_params,
            episode_returns=episode_returns,
            episode_lengths=episode_lengths,
            env_steps=self.env_steps - steps_before,
            discarded_steps=discarded,
            env_errors=errors,
            nonfinite_replaced=self.guard.replaced - replaced_before,
            episode_starts=episode_starts if recurrent else None,
            policy_states=policy_states if recurrent else (),
        )
        self.sequence += 1
        return segment

    def close(self) -> None:
        for env in self.envs:
            with contextlib.suppress(Exception):
                env.close()
