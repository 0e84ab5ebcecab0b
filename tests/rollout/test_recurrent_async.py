"""Recurrent policies on the asynchronous runners: the numpy LSTM/GRU twin, the state
each worker carries across segments, the stale log π_old over sequences, a short run.

Workers mostly step ``crashing_env.CountingEnv`` (observation ``[t, 0]``, episodes of
``episode_length`` steps): an observation with ``t = 0`` is exactly an episode start,
which gives an oracle for ``episode_starts`` in every column.
"""

from __future__ import annotations

import csv
import functools
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import keras
import numpy as np
import pytest
import tensorflow as tf
from crashing_env import CountingEnv
from ray_support import local_ray

from trpo_tf.agent import Agent
from trpo_tf.config import experiment_from_dict
from trpo_tf.config.build import build_policy
from trpo_tf.envs import make_vector_env
from trpo_tf.learner import Learner
from trpo_tf.normalization import ObservationNormalizer, RewardNormalizer
from trpo_tf.rollout.async_runner import AsyncRunner
from trpo_tf.rollout.async_worker import RolloutWorker
from trpo_tf.rollout.numpy_actor import (
    NumpyRecurrentActor,
    can_mirror_recurrent,
    mirror_recurrent,
    read_cell,
)
from trpo_tf.rollout.numpy_policy import (
    PolicySnapshot,
    SnapshotPolicy,
    cell_forward,
    recurrent_forward,
)
from trpo_tf.rollout.sampler import SyncSampler
from trpo_tf.rollout.segment import WorkerSpec
from trpo_tf.run_loading import load_run
from trpo_tf.sequences import from_sequences, to_sequences
from trpo_tf.train import train

T, K_ENVS, L = 8, 2, 4
COUNTING_SPACE = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)


def _config(cell: str = "lstm", **sections):
    base = {
        "env": {"id": "CartPole-v1", "n_envs": K_ENVS},
        "policy": {"hidden": [8], "network": {"name": cell, "units": 6}},
        "trainer": {"steps_per_iteration": T * K_ENVS, "bptt_length": L},
        "value": {"minibatch_size": T * K_ENVS},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return experiment_from_dict(base)


def _randomize(variables, seed: int, scale: float = 0.5) -> None:
    """Non-trivial weights, so that every gate and bias matters."""
    rng = np.random.default_rng(seed)
    for variable in variables:
        variable.assign(rng.normal(size=variable.shape) * scale)


def _policy(cell: str = "lstm", space: gym.Space | None = None, obs_dim: int = 2, seed: int = 0):
    observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    policy = build_policy(
        _config(cell), obs_dim, space or gym.spaces.Discrete(2), observation_space
    )
    _randomize(policy.policy_variables, seed)
    return policy


# -- the numpy twin ----------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_numpy_cells_equal_keras_cells(cell: str) -> None:
    units, dim, n = 7, 5, 32
    if cell == "lstm":
        layer = keras.layers.LSTMCell(units, unit_forget_bias=True)
    else:
        layer = keras.layers.GRUCell(units, reset_after=True)
    layer.build((None, dim))
    _randomize(layer.weights, seed=1)  # the bias too: [4H] for an LSTM, [2, 3H] for a GRU
    assert tuple(layer.bias.shape) == ((4 * units,) if cell == "lstm" else (2, 3 * units))
    rng = np.random.default_rng(2)
    inputs = rng.normal(size=(n, dim)).astype(np.float32) * 2.0
    state = tuple(
        rng.normal(size=(n, units)).astype(np.float32) for _ in range(2 if cell == "lstm" else 1)
    )
    hidden, new_state = layer(tf.constant(inputs), [tf.constant(s) for s in state])
    new_state = new_state if isinstance(new_state, list | tuple) else [new_state]
    twin_hidden, twin_state = cell_forward(read_cell(cell, layer), inputs, state)
    np.testing.assert_allclose(twin_hidden, hidden.numpy(), rtol=0, atol=1e-5)
    assert len(twin_state) == len(new_state) == (2 if cell == "lstm" else 1)
    for twin, keras_part in zip(twin_state, new_state, strict=True):
        np.testing.assert_allclose(twin, keras_part.numpy(), rtol=0, atol=1e-5)
        assert twin.dtype == np.float32


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize(
    "space",
    [gym.spaces.Discrete(3), gym.spaces.Box(-1.0, 1.0, (2,), np.float32)],
    ids=["categorical", "diag_gaussian"],
)
def test_numpy_recurrent_actor_equals_the_policy_step(cell: str, space: gym.Space) -> None:
    policy = _policy(cell, space, obs_dim=4, seed=3)
    assert can_mirror_recurrent(policy)
    actor = NumpyRecurrentActor(policy, seed=0)
    rng = np.random.default_rng(4)
    observations = rng.normal(size=(16, 4)).astype(np.float32)
    state = tuple(rng.normal(size=(16, s)).astype(np.float32) for s in policy.state_sizes)
    actions, log_prob, params, next_state = actor.sample(observations, state)
    expected_params, expected_state = policy.step_params(tf.constant(observations), state)
    np.testing.assert_allclose(params, expected_params.numpy(), rtol=0, atol=1e-5)
    for twin, part in zip(next_state, expected_state, strict=True):
        np.testing.assert_allclose(twin, part.numpy(), rtol=0, atol=1e-5)
    expected_log_prob = policy.distribution(expected_params).log_prob(actions).numpy()
    np.testing.assert_allclose(log_prob, expected_log_prob, rtol=1e-5, atol=1e-5)
    mode, _ = actor.mode(observations, state)
    np.testing.assert_allclose(mode, policy.head.mode(expected_params).numpy(), atol=1e-5)

    # A snapshot crosses a process boundary (pickled) and acts the same, without TF.
    snapshot = pickle.loads(pickle.dumps(actor.snapshot().with_version(7, None)))
    assert snapshot.recurrent and snapshot.state_sizes == policy.state_sizes
    worker_policy = SnapshotPolicy(snapshot)
    _, _, worker_params, worker_state = worker_policy.step(observations, state, rng)
    np.testing.assert_allclose(worker_params, params, rtol=0, atol=1e-6)
    for twin, part in zip(worker_state, next_state, strict=True):
        np.testing.assert_allclose(twin, part, rtol=0, atol=1e-6)
    with pytest.raises(TypeError, match="step"):
        worker_policy.sample(observations, rng)


def test_a_snapshot_reads_the_weights_as_they_are_now() -> None:
    policy = _policy()
    actor = NumpyRecurrentActor(policy, seed=0)
    before = actor.snapshot()
    policy.network.cell.kernel.assign(policy.network.cell.kernel + 1.0)
    after = actor.snapshot()  # no sync() in between: the training loop never syncs it
    np.testing.assert_allclose(after.cell[1], before.cell[1] + 1.0, atol=1e-6)
    assert mirror_recurrent(policy.network) is not None


# -- state carried by workers --------------------------------------------------------------


def _counting(episode_length: int = 7, **kwargs):
    return functools.partial(CountingEnv, episode_length=episode_length, **kwargs)


def _spec(env_fn, n_envs: int = K_ENVS, length: int = T) -> WorkerSpec:
    return WorkerSpec(env_fn, "counting", n_envs=n_envs, segment_length=length, seed=0)


def test_one_worker_collects_what_the_sync_sampler_collects() -> None:
    """Same env stream, same action draws: segment after segment, the worker records
    the data, episode starts and states that the sync sampler records batch after
    batch, the state carried across segments and across a new snapshot."""
    policy = _policy()
    twin = NumpyRecurrentActor(policy, seed=0)
    env_fn = _counting()
    sampler = SyncSampler(
        make_vector_env(env_fn, K_ENVS, "sync", "counting"),
        "counting",
        twin,
        policy.head,
        T,
        ObservationNormalizer((2,), False),
        RewardNormalizer(K_ENVS, 0.99, False),
        clip_nonfinite=False,
        seed=0,
    )
    worker = RolloutWorker(_spec(env_fn), index=0, incarnation=0, snapshot=twin.snapshot())
    twin.rng = np.random.default_rng(11)
    worker.rng = np.random.default_rng(11)
    for version in (1, 2, 3):
        if version == 3:  # a new policy: the carried state is not reset
            _randomize(policy.policy_variables, seed=5)
            worker.set_policy(twin.snapshot().with_version(3, None))
            twin.sync()
        rollout = sampler.collect(version)
        segment = worker.run_segment()
        for name in (
            "observations",
            "actions",
            "terminated",
            "truncated",
            "behavior_log_prob",
            "behavior_params",
            "episode_starts",
        ):
            np.testing.assert_array_equal(getattr(segment, name), getattr(rollout, name), name)
        for mine, sync in zip(segment.policy_states, rollout.policy_states, strict=True):
            np.testing.assert_array_equal(mine, sync)
        np.testing.assert_array_equal(segment.last_observations, rollout.last_observations)
    # The stream did cross episode ends and segment boundaries mid-episode.
    assert segment.episode_starts.any() and not segment.episode_starts[0].all()
    assert np.abs(segment.policy_states[0][0]).max() > 0


def _check_columns(batches: list[Any], snapshot_of: Callable[[int], PolicySnapshot]) -> None:
    """Joined in time, every column: starts exactly at t = 0, the zero state there, and
    each recorded state is β's step from the one before (β = the snapshot of the
    version that acted; ``batches`` are Rollouts or Segments of one worker in order)."""
    observations = np.concatenate([b.observations for b in batches])
    starts = np.concatenate([b.episode_starts for b in batches])
    states = tuple(
        np.concatenate(parts) for parts in zip(*(b.policy_states for b in batches), strict=True)
    )
    versions = np.concatenate(
        [np.broadcast_to(b.policy_version, b.episode_starts.shape) for b in batches]
    )
    np.testing.assert_array_equal(starts, observations[..., 0] == 0)
    for part in states:
        assert part.shape[:2] == starts.shape and part.dtype == np.float32
        assert not part[starts].any()
    n_steps, n_envs = starts.shape
    for t in range(n_steps - 1):
        for n in range(n_envs):
            if starts[t + 1, n]:
                continue
            snapshot = snapshot_of(int(versions[t, n]))
            state = tuple(part[t, n][None] for part in states)
            _, expected = cell_forward(snapshot.cell, observations[t, n][None], state)
            for part, want in zip(states, expected, strict=True):
                np.testing.assert_allclose(part[t + 1, n], want[0], rtol=0, atol=1e-6)


def _async_runner(policy, env_fn, workers: int = 1, runner_cls=AsyncRunner, **kwargs):
    twin = NumpyRecurrentActor(policy, seed=0)
    runner = runner_cls(
        _spec(env_fn),
        twin,
        ObservationNormalizer((2,), False),
        RewardNormalizer(workers * K_ENVS, 0.99, False),
        workers=workers,
        max_policy_lag=kwargs.pop("max_policy_lag", 1),
        on_event=lambda _: None,
        **kwargs,
    )
    return runner, twin


def test_async_batches_carry_the_state_across_segments_and_snapshots() -> None:
    """One worker, three batches: the rollout fields have the [T, N] layout, and
    stepping β through the whole stream (batch after batch, weights changing between
    them) gives the recorded states."""
    policy = _policy()
    runner, twin = _async_runner(policy, _counting(episode_length=10))
    snapshots = {1: twin.snapshot()}
    batches = []
    try:
        for version in (1, 2, 3):
            rollout = runner.collect(policy_version=version)
            assert rollout.episode_starts.shape == (T, K_ENVS)
            assert [p.shape for p in rollout.policy_states] == [(T, K_ENVS, 6)] * 2
            batches.append(rollout)
            _randomize(policy.policy_variables, seed=10 + version)
            runner.policy_updated(version + 1)
            snapshots[version + 1] = twin.snapshot()
    finally:
        runner.close()
    assert batches[0].episode_starts[0].all()  # a new worker starts every episode
    _check_columns(batches, snapshots.__getitem__)
    # Episodes of 10 steps straddle batches of 8: a segment begins mid-episode with
    # the state β left at the end of the one before, under an older snapshot.
    assert not batches[1].episode_starts[0].any()
    assert np.abs(batches[1].policy_states[0][0]).max() > 0
    assert len(set(np.concatenate([b.policy_version.ravel() for b in batches]))) > 1


def test_rebuilt_env_and_restarted_worker_restart_their_states(tmp_path: Path) -> None:
    """An env that raises is rebuilt (its partial episode re-stepped from a zero state);
    a worker process that dies is restarted, every state zero again."""
    policy = _policy()
    env_fn = _counting(crash_at=13, marker=str(tmp_path / "raise"))
    snapshot = NumpyRecurrentActor(policy, 0).snapshot()
    worker = RolloutWorker(_spec(env_fn), 0, 0, snapshot)
    segments = [worker.run_segment() for _ in range(3)]
    assert sum(s.discarded_steps for s in segments) > 0  # the env did raise
    _check_columns(segments, lambda version: snapshot)  # one β throughout

    # The weights stay the same: every version is this snapshot.
    runner, _ = _async_runner(
        policy, _counting(crash_at=20, crash_mode="exit", marker=str(tmp_path / "exit"))
    )
    try:
        for version in range(1, 6):
            rollout = runner.collect(policy_version=version)
            _check_columns([rollout], lambda version: snapshot)
            runner.policy_updated(version + 1)
            if runner.worker_restarts:
                break
        rollout = runner.collect(policy_version=version + 1)
        _check_columns([rollout], lambda version: snapshot)
    finally:
        runner.close()
    assert runner.worker_restarts == 1


# -- the learner's stale log π_old -----------------------------------------------------------


def test_stale_log_prob_is_a_sequence_pass_from_the_recorded_states() -> None:
    config = _config(env={"n_envs": 2 * K_ENVS}, trainer={"steps_per_iteration": 2 * T * K_ENVS})
    agent = Agent.build(config, 2, gym.spaces.Discrete(2), COUNTING_SPACE)
    policy = agent.policy
    _randomize(policy.policy_variables, seed=0)
    runner, _ = _async_runner(policy, _counting(), workers=2)
    try:
        rollout = runner.collect(policy_version=1)  # [T, 2·K_ENVS]
    finally:
        runner.close()
    learner = Learner(config, agent, rollout.num_steps, 2)
    np.testing.assert_array_equal(learner.old_log_prob(rollout, 1), rollout.behavior_log_prob)
    # β = the weights that collected it, to float32 round-off (the numpy twin).
    np.testing.assert_allclose(
        learner.old_log_prob(rollout, 2), rollout.behavior_log_prob, rtol=0, atol=1e-5
    )
    _randomize(policy.policy_variables, seed=1)  # π_old ≠ β
    stale = learner.old_log_prob(rollout, 2)
    assert stale.shape == (T, 2 * K_ENVS)
    assert np.abs(stale - rollout.behavior_log_prob).max() > 1e-2

    # Step by step: each sequence of L starts from β's recorded state, resets at starts.
    expected = np.zeros_like(stale)
    for n in range(rollout.observations.shape[1]):
        for t in range(T):
            if t % L == 0:
                state = tuple(tf.constant(part[t, n][None]) for part in rollout.policy_states)
            if rollout.episode_starts[t, n]:
                state = tuple(tf.zeros_like(part) for part in state)
            params, state = policy.step_params(tf.constant(rollout.observations[t, n][None]), state)
            action = rollout.actions[t, n][None]
            expected[t, n] = policy.distribution(params).log_prob(action).numpy()[0]
    np.testing.assert_allclose(stale, expected, rtol=0, atol=1e-5)


def test_from_sequences_inverts_to_sequences() -> None:
    values = np.arange(T * 3 * 2).reshape(T, 3, 2)
    flat = to_sequences(values, L).reshape(-1, 2)
    np.testing.assert_array_equal(from_sequences(flat, 3), values)
    np.testing.assert_array_equal(from_sequences(flat[:, 0], 3), values[..., 0])


# -- end to end ----------------------------------------------------------------------------


def test_async_lstm_training_on_cartpole(tmp_path: Path) -> None:
    config = experiment_from_dict(
        {
            "env": {"id": "CartPole-v1", "n_envs": 4, "normalize_obs": True},
            "policy": {"hidden": [16], "network": {"name": "lstm", "units": 8}},
            "runner": {"kind": "async", "workers": 2, "max_policy_lag": 1},
            "trainer": {
                "steps_per_iteration": 128,
                "total_steps": 512,
                "bptt_length": 8,
                "jit_compile": False,
            },
            "value": {"epochs": 2, "minibatch_size": 64, "hidden": [16]},
            "eval": {"every": 4, "episodes": 2},
            "checkpoint": {"every": 0},
            "tracking": {"tensorboard": False},
        }
    )
    train(config, tmp_path / "run", quiet=True)
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3, 4]
    kls = [float(r["kl"]) for r in rows]
    assert all(np.isfinite(kls)) and max(kls) <= 0.01 * 1.0001
    accepted = [r for r in rows if r["line_search_accepted"] in ("1", "True")]
    assert accepted and all(float(r["kl"]) > 0 for r in accepted)
    assert all(float(r["surrogate_improvement"]) > 0 for r in accepted)
    assert max(float(r["policy_lag_max"]) for r in rows) == 1.0  # the stale path ran
    assert all(np.isfinite(float(r["is_weight_mean"])) for r in rows)
    _, trained = load_run(tmp_path / "run")
    initial = Agent.build(config, 4, gym.spaces.Discrete(2))
    moved = [
        float(np.abs(a.numpy() - b.numpy()).max())
        for a, b in zip(
            trained.policy.policy_variables, initial.policy.policy_variables, strict=True
        )
    ]
    assert max(moved) > 0


# -- Ray ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_session():
    with local_ray(num_cpus=2) as ray:
        yield ray


def test_ray_workers_carry_the_state_too(request) -> None:
    request.getfixturevalue("ray_session")
    from trpo_tf.rollout.ray_runner import RayRunner

    policy = _policy("gru")
    runner, twin = _async_runner(policy, _counting(episode_length=10), runner_cls=RayRunner)
    snapshots = {1: twin.snapshot()}
    try:
        first = runner.collect(policy_version=1)
        runner.policy_updated(2)
        snapshots[2] = twin.snapshot()
        second = runner.collect(policy_version=2)
    finally:
        runner.close()
    _check_columns([first, second], snapshots.__getitem__)
    assert not second.episode_starts[0].any()  # carried on from the first segment
    last = tuple(part[-1] for part in first.policy_states)
    _, carried = cell_forward(snapshots[1].cell, first.observations[-1], last)
    np.testing.assert_allclose(second.policy_states[0][0], carried[0], rtol=0, atol=1e-6)


def test_recurrent_forward_is_cell_then_output_layers() -> None:
    policy = _policy()
    snapshot = NumpyRecurrentActor(policy, 0).snapshot()
    observations = np.ones((3, 2), np.float32)
    state = tuple(np.zeros((3, s), np.float32) for s in snapshot.state_sizes)
    outputs, _ = recurrent_forward(snapshot.cell, snapshot.layers, observations, state)
    expected, _ = policy.network.step(tf.constant(observations), state)
    np.testing.assert_allclose(outputs, expected.numpy(), rtol=0, atol=1e-5)


def test_a_recurrent_network_workers_cannot_run_is_one_config_error() -> None:
    from trpo_tf.errors import ConfigError
    from trpo_tf.rollout.actor import RecurrentActor
    from trpo_tf.rollout.runners import build_runner

    config = _config(policy={"activation": "gelu"}, runner={"kind": "async", "workers": 1})
    agent = Agent.build(config, 2, gym.spaces.Discrete(2), COUNTING_SPACE)
    assert agent.policy.recurrent and not can_mirror_recurrent(agent.policy)
    actor = RecurrentActor(agent.policy, K_ENVS, 2, 0)
    with pytest.raises(ConfigError, match=r"runner.kind async .* an lstm/gru cell"):
        build_runner(config, None, actor, agent, T)
