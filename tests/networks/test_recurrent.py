"""Recurrent networks (lstm, gru) and the TRPO step over sequences."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from trpo_tf import checkpoint_state
from trpo_tf.config import experiment_from_dict
from trpo_tf.distributions import make_categorical, make_diag_gaussian
from trpo_tf.errors import ConfigError
from trpo_tf.evaluation import EVAL_SEED_OFFSET
from trpo_tf.interfaces import NetworkSpec
from trpo_tf.networks.rnn import RecurrentTorso, make_gru, make_lstm
from trpo_tf.policy import Policy, SequenceInputs
from trpo_tf.recurrent_value import RecurrentValues
from trpo_tf.run_loading import evaluate_run, load_run
from trpo_tf.sequences import sequence_arguments, to_sequences
from trpo_tf.testing import check_network
from trpo_tf.train import train
from trpo_tf.trainer.adam import FusedAdam
from trpo_tf.trainer.flat import flat_gradient, num_params
from trpo_tf.trainer.fvp import fisher_of_linearization, fisher_vector_product, primal_variables
from trpo_tf.trainer.value_fit import fit_value_sequences
from trpo_tf.types import Rollout

FACTORIES = {"lstm": make_lstm, "gru": make_gru}


def _network(kind: str, observation_dim: int = 3, output_dim: int = 2, units: int = 5):
    spec = NetworkSpec(
        observation_space=gym.spaces.Box(-1.0, 1.0, (observation_dim,)),
        observation_dim=observation_dim,
        output_dim=output_dim,
        hidden=(6,),
        output_gain=0.5,
        seed=1,
        name="policy_network",
    )
    return RecurrentTorso(spec, kind, units, dtype="float64")


def _steps(network, observations, state, starts):
    """Reference: ``step`` L times, the state zeroed where ``starts`` is 1."""
    outputs = []
    for t in range(observations.shape[1]):
        state = tuple(np.where(starts[:, t : t + 1] > 0, 0.0, part) for part in state)
        output, state = network.step(tf.constant(observations[:, t]), state)
        outputs.append(output.numpy())
    return np.stack(outputs, axis=1)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_sequence_equals_steps_with_resets(kind: str) -> None:
    network = _network(kind)
    rng = np.random.default_rng(0)
    observations = rng.normal(size=(4, 7, 3))
    starts = np.zeros((4, 7))
    starts[1, 3] = starts[2, 0] = starts[3, 6] = 1.0
    state = tuple(rng.normal(size=(4, size)) for size in network.state_sizes)
    expected = _steps(network, observations, state, starts)
    actual = network.sequence(tf.constant(observations), state, tf.constant(starts)).numpy()
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-12)
    assert network.state_sizes == ((5, 5) if kind == "lstm" else (5,))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_a_reset_inside_a_sequence_equals_two_sequences(kind: str) -> None:
    network = _network(kind)
    rng = np.random.default_rng(1)
    observations = rng.normal(size=(2, 8, 3))
    state = tuple(rng.normal(size=(2, size)) for size in network.state_sizes)
    starts = np.zeros((2, 8))
    starts[:, 5] = 1.0
    joined = network.sequence(tf.constant(observations), state, tf.constant(starts)).numpy()
    first = network.sequence(tf.constant(observations[:, :5]), state, tf.zeros((2, 5), tf.float64))
    second = network.sequence(
        tf.constant(observations[:, 5:]),
        network.initial_state(2),
        tf.zeros((2, 3), tf.float64),
    )
    np.testing.assert_allclose(joined[:, :5], first.numpy(), atol=1e-12)
    np.testing.assert_allclose(joined[:, 5:], second.numpy(), atol=1e-12)
    # Nothing before the reset reaches the outputs after it.
    inputs = tf.constant(observations)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        after = tf.reduce_sum(network.sequence(inputs, state, tf.constant(starts))[:, 5:])
    gradient = tape.gradient(after, inputs).numpy()
    assert np.all(gradient[:, :5] == 0.0) and np.any(gradient[:, 5:] != 0.0)


def _policy(kind: str, head: str) -> Policy:
    if head == "categorical":
        distribution = make_categorical(gym.spaces.Discrete(3), dtype=tf.float64)
    else:
        distribution = make_diag_gaussian(gym.spaces.Box(-1.0, 1.0, (2,)), dtype=tf.float64)
        distribution.log_std.assign([0.2, -0.3])
    return Policy(_network(kind, output_dim=distribution.num_inputs, units=4), distribution)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("head", ["categorical", "diag_gaussian"])
def test_fisher_products_equal_the_explicit_hessian_of_the_sequence_kl(
    kind: str, head: str
) -> None:
    policy = _policy(kind, head)
    rng = np.random.default_rng(2)
    starts = np.zeros((3, 5))
    starts[0, 2] = starts[2, 0] = 1.0
    inputs = SequenceInputs(
        tf.constant(rng.normal(size=(3, 5, 3))),
        tf.constant(starts),
        tuple(tf.constant(rng.normal(size=(3, s))) for s in policy.state_sizes),
    )
    variables = policy.policy_variables
    old = tf.stop_gradient(policy.dist_params(inputs))
    assert old.shape[0] == 15  # B·L steps

    def kl_of_params(p_old, p):
        return tf.reduce_mean(policy.distribution(p_old).kl_divergence(policy.distribution(p)))

    # The explicit Hessian ∂²/∂θ² mean KL(π_old ‖ π_θ) over all steps, column by column.
    primals = primal_variables(variables)
    with tf.GradientTape(persistent=True) as outer:
        with tf.GradientTape() as inner:
            kl = kl_of_params(old, policy.dist_params(inputs))
        gradient = flat_gradient(inner.gradient(kl, primals), variables)
    jacobians = outer.jacobian(gradient, primals, experimental_use_pfor=False)
    hessian = np.concatenate([j.numpy().reshape(gradient.shape[0], -1) for j in jacobians], axis=1)
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-10)

    forward = tf.GradientTape(persistent=True, watch_accessed_variables=False)
    with forward:
        forward.watch(primals)
        params = policy.dist_params(inputs)
    gauss_newton = fisher_of_linearization(forward, params, old, kl_of_params, variables, 0.1)
    for seed in range(3):
        vector = np.random.default_rng(seed).normal(size=num_params(variables))
        expected = hessian @ vector + 0.1 * vector
        by_hessian = fisher_vector_product(
            lambda: kl_of_params(old, policy.dist_params(inputs)),
            variables,
            tf.constant(vector),
            0.1,
        )
        np.testing.assert_allclose(by_hessian.numpy(), expected, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(
            gauss_newton(tf.constant(vector)).numpy(), expected, rtol=1e-8, atol=1e-10
        )


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_the_held_out_check_splits_a_recurrent_batch_by_whole_sequences(kind: str) -> None:
    """B = 4 sequences of L = 5 steps: half A is the first two sequences (steps 0–9). With
    Â of one rule everywhere the checked step is TRPO's bit for bit; with the rule's sign
    flipped on the second two sequences the step is skipped and θ kept bit for bit."""
    from trpo_tf.trainer import TrpoHyperparameters
    from trpo_tf.trainer.flat import get_flat
    from trpo_tf.trainer.held_out import half_split
    from trpo_tf.trainer.trpo import SKIP_NO_HELD_OUT_GAIN, SKIP_NONE, policy_step

    # Halves end at a sequence boundary: 3 sequences of 5 split after the first (step 5,
    # not 7); states split in the middle.
    assert (half_split(15, 3), half_split(20, 4), half_split(15, 15)) == (5, 10, 7)
    with pytest.raises(ConfigError, match="held_out_check needs a batch of at least 2"):
        half_split(5, 1)

    rng = np.random.default_rng(5)
    observations = tf.constant(rng.normal(size=(4, 5, 3)))
    noise = tf.constant(rng.normal(size=(20, 2)))  # the actions, the same in every call
    starts = np.zeros((4, 5))
    starts[:, 0] = 1.0

    def step(held_out_check: bool, flip: bool) -> tuple[dict, np.ndarray, np.ndarray]:
        policy = _policy(kind, "diag_gaussian")
        inputs = SequenceInputs(
            observations,
            tf.constant(starts),
            tuple(tf.zeros((4, size), tf.float64) for size in policy.state_sizes),
        )
        distribution = policy.distribution(policy.dist_params(inputs))
        actions = distribution.mean() + distribution.stddev() * noise
        advantages = (actions[:, 0] - distribution.mean()[:, 0]).numpy()
        advantages = (advantages - advantages.mean()) / advantages.std()
        if flip:
            advantages[10:] *= -1.0
        before = get_flat(policy.policy_variables).numpy()
        metrics = policy_step(
            policy,
            TrpoHyperparameters(held_out_check=held_out_check),
            tf.random.Generator.from_seed(0),
            inputs,
            actions,
            distribution.log_prob(actions),
            tf.constant(advantages),
        )
        return metrics, before, get_flat(policy.policy_variables).numpy()

    plain, _, plain_after = step(held_out_check=False, flip=False)
    checked, _, checked_after = step(held_out_check=True, flip=False)
    assert int(checked["skip_reason"]) == SKIP_NONE and bool(checked["line_search_accepted"])
    np.testing.assert_array_equal(checked_after, plain_after)

    skipped, before, after = step(held_out_check=True, flip=True)
    assert int(skipped["skip_reason"]) == SKIP_NO_HELD_OUT_GAIN
    np.testing.assert_array_equal(after, before)
    taken, before, after = step(held_out_check=False, flip=True)
    assert int(taken["skip_reason"]) == SKIP_NONE and not np.array_equal(after, before)


def test_rollout_is_cut_into_sequences_env_by_env() -> None:
    T, N, L = 8, 3, 4
    observations = np.arange(T * N * 2, dtype=np.float32).reshape(T, N, 2)
    sequences = to_sequences(observations, L)
    assert sequences.shape == (N * T // L, L, 2)
    for n in range(N):
        for c in range(T // L):
            for step in range(L):
                np.testing.assert_array_equal(
                    sequences[n * (T // L) + c, step], observations[c * L + step, n]
                )
    states = (np.arange(T * N * 5, dtype=np.float32).reshape(T, N, 5),)
    zeros = np.zeros((T, N), np.float32)
    rollout = Rollout(
        observations=observations,
        actions=np.zeros((T, N), np.int64),
        rewards=zeros,
        raw_rewards=zeros,
        terminated=zeros.astype(bool),
        truncated=zeros.astype(bool),
        final_observations=observations,
        last_observations=observations[0],
        behavior_log_prob=zeros,
        behavior_params=zeros[..., None],
        policy_version=zeros.astype(np.int64),
        episode_returns=np.zeros(0),
        episode_lengths=np.zeros(0, np.int64),
        episode_starts=(np.arange(T * N).reshape(T, N) % 5 == 0),
        policy_states=states,
    )
    advantages = np.arange(T * N, dtype=np.float32).reshape(T, N)
    obs, starts, state, actions, log_prob, adv = sequence_arguments(rollout, L, zeros, advantages)
    # β's state at the start of sequence n·S + c is the state recorded before step c·L of env n.
    for n in range(N):
        for c in range(T // L):
            np.testing.assert_array_equal(state[0][n * (T // L) + c], states[0][c * L, n])
    np.testing.assert_array_equal(adv.reshape(-1, L), to_sequences(advantages, L))
    np.testing.assert_array_equal(starts, to_sequences(rollout.episode_starts, L))
    assert obs.shape == (6, L, 2) and actions.shape == (24,) and log_prob.shape == (24,)


def _config(total_steps: int, value_network: dict | None = None, runner: str = "sync", **trainer):
    return experiment_from_dict(
        {
            "env": {"id": "CartPole-v1", "n_envs": 2},
            "policy": {"hidden": [16], "network": {"name": "lstm", "units": 8}},
            "trainer": {
                "steps_per_iteration": 128,
                "total_steps": total_steps,
                "bptt_length": 8,
                "fvp_subsample": 0.5,
                **trainer,
            },
            "value": {
                "minibatch_size": 64,
                "epochs": 2,
                "hidden": [16],
                "network": value_network or {},
            },
            "runner": {"kind": runner},
            "eval": {"every": 2, "episodes": 2},
            "checkpoint": {"every": 1, "keep": 2},
            "tracking": {"tensorboard": False},
        }
    )


def _rows(path: Path) -> list[dict[str, str]]:
    timing = {"wall_time_s", "fps", "rollout_time_s", "update_time_s"}
    with open(path, newline="") as handle:
        return [{k: v for k, v in r.items() if k not in timing} for r in csv.DictReader(handle)]


@pytest.mark.parametrize("value", ["mlp", "gru"])
def test_recurrent_training_resumes_exactly_mid_episode(tmp_path: Path, value: str) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    network = {"name": value, **({"units": 8} if value == "gru" else {})}
    train(_config(512, network), straight, quiet=True)
    train(_config(256, network), resumed, quiet=True)
    # The run stops mid-episode: the checkpoint holds the policy's memory of it.
    state, _ = checkpoint_state.read(resumed / "checkpoints" / "iter_000002")
    sampler = state["sampler"]
    assert sampler["envs"] is not None and not sampler["episode_start"].all()
    assert np.abs(sampler["policy_state"][0]).max() > 0
    train(_config(512, network), resumed, quiet=True, resume=True)
    rows = _rows(straight / "metrics.csv")
    assert rows == _rows(resumed / "metrics.csv")
    for row in rows:  # every step kept the trust region and was traced once
        assert float(row["kl"]) <= 0.01 * 1.0001
    assert any(row["line_search_accepted"] == "1" for row in rows)
    _, agent_a = load_run(straight)
    _, agent_b = load_run(resumed)
    for a, b in zip(agent_a.policy.policy_variables, agent_b.policy.policy_variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert agent_a.policy.recurrent
    assert hasattr(agent_a.value_network, "state_sizes") == (value == "gru")
    if value == "gru":  # V's memory of the episodes in progress is checkpointed too
        carried = state["recurrent_values"]["value_state"][0]
        assert carried.shape == (2, 8) and np.abs(carried).max() > 0
    summary = json.loads((straight / "summary.json").read_text())
    assert summary["update_retraces"] == 0
    # `trpo-tf eval RUN_DIR` carries the state per episode as training's evaluation did.
    config = load_run(straight)[0]
    returns = evaluate_run(straight, config.eval.episodes, config.seed + EVAL_SEED_OFFSET)
    assert float(np.mean(returns)) == pytest.approx(summary["final_eval_return"])


def test_bptt_length_must_divide_the_steps_per_env(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"trainer.bptt_length must divide .* = 64\)"):
        train(_config(128, bptt_length=24), tmp_path / "run", quiet=True)


def test_a_recurrent_value_network_runs_synchronously_only(tmp_path: Path) -> None:
    config = _config(128, {"name": "gru"}, runner="async")
    with pytest.raises(ConfigError, match="value.network: a recurrent value network .* sync only"):
        train(config, tmp_path / "run", quiet=True)


def test_recurrent_values_step_the_value_network_through_the_rollout() -> None:
    network = make_gru(
        NetworkSpec(
            observation_space=gym.spaces.Box(-1.0, 1.0, (3,)),
            observation_dim=3,
            output_dim=1,
            hidden=(6,),
            seed=1,
            name="value_network",
        ),
        units=4,
    )
    T, N = 6, 2
    rng = np.random.default_rng(3)
    observations = rng.normal(size=(2, T, N, 3)).astype(np.float32)
    finals = rng.normal(size=(2, T, N, 3)).astype(np.float32)
    terminated = np.zeros((2, T, N), bool)
    truncated = np.zeros((2, T, N), bool)
    terminated[0, 2, 0] = True  # env 0's episode ends at step 2 of the first rollout
    truncated[0, 5, 1] = True  # env 1's is cut at the first rollout's last step
    truncated[1, 3, 0] = True
    values = RecurrentValues(network, N)
    start = np.ones(N, bool)
    state = network.initial_state(N)
    for k in range(2):  # two rollouts: V's state carries from the first to the second
        done = np.logical_or(terminated[k], truncated[k])
        starts = np.concatenate([start[None], done[:-1]])
        last = rng.normal(size=(N, 3)).astype(np.float32)
        rollout = _rollout(observations[k], terminated[k], truncated[k], finals[k], last, starts)
        got_values, got_next, got_states = values(rollout)
        expected_values = np.zeros((T, N))
        expected_finals = np.zeros((T, N))
        for t in range(T):
            keep = tf.constant(1.0 - starts[t, :, None].astype(np.float32))
            state = tuple(part * keep for part in state)
            np.testing.assert_allclose(got_states[0][t], state[0].numpy(), atol=1e-6)
            output, state = network.step(tf.constant(observations[k, t]), state)
            expected_values[t] = output.numpy()[:, 0]
            for n in np.flatnonzero(truncated[k, t]):  # V(final obs) with s_t's memory
                final, _ = network.step(
                    tf.constant(finals[k, t, n : n + 1]), tuple(p[n : n + 1] for p in state)
                )
                expected_finals[t, n] = final.numpy()[0, 0]
        keep = tf.constant(1.0 - done[-1, :, None].astype(np.float32))
        last_value, _ = network.step(tf.constant(last), tuple(part * keep for part in state))
        shifted = np.concatenate([expected_values[1:], last_value.numpy()[None, :, 0]])
        np.testing.assert_allclose(got_values, expected_values, atol=1e-5)
        np.testing.assert_allclose(
            got_next, np.where(truncated[k], expected_finals, shifted), atol=1e-5
        )
        start = done[-1]


def _rollout(observations, terminated, truncated, finals, last, starts) -> Rollout:
    T, N = terminated.shape
    zeros = np.zeros((T, N), np.float32)
    return Rollout(
        observations=observations,
        actions=np.zeros((T, N), np.int64),
        rewards=zeros,
        raw_rewards=zeros,
        terminated=terminated,
        truncated=truncated,
        final_observations=np.where(truncated[..., None], finals, 0.0).astype(np.float32),
        last_observations=last,
        behavior_log_prob=zeros,
        behavior_params=zeros[..., None],
        policy_version=zeros.astype(np.int64),
        episode_returns=np.zeros(0),
        episode_lengths=np.zeros(0, np.int64),
        episode_starts=starts,
    )


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_builtin_recurrent_networks_pass_the_conformance_kit(kind: str) -> None:
    check_network(FACTORIES[kind], gym.spaces.Box(-1.0, 1.0, (4,)), units=8, saved_model=False)


def test_the_conformance_kit_catches_a_sequence_that_ignores_resets() -> None:
    class NoReset(RecurrentTorso):
        def sequence(self, observations, state, starts):
            return super().sequence(observations, state, tf.zeros_like(starts))

    def factory(spec: NetworkSpec) -> RecurrentTorso:
        return NoReset(spec, "gru", 8)

    with pytest.raises(AssertionError, match="sequence equals step repeated with resets"):
        check_network(factory, gym.spaces.Box(-1.0, 1.0, (4,)), saved_model=False)


def test_a_recurrent_value_fit_learns_a_target_that_needs_memory() -> None:
    network = make_lstm(
        NetworkSpec(
            observation_space=gym.spaces.Box(-1.0, 1.0, (1,)),
            observation_dim=1,
            output_dim=1,
            hidden=(16,),
            seed=0,
            name="value_network",
        ),
        units=16,
    )
    rng = np.random.default_rng(0)
    observations = rng.uniform(-1, 1, size=(32, 6, 1)).astype(np.float32)
    starts = np.zeros((32, 6), np.float32)
    starts[:, 0] = 1.0
    starts[::4, 3] = 1.0  # some sequences hold two episodes
    # The target is the previous observation of the same episode (0 at its first step).
    previous = np.concatenate([np.zeros((32, 1)), observations[:, :-1, 0]], axis=1)
    targets = np.where(starts > 0, 0.0, previous).astype(np.float32)
    state = tuple(np.zeros((32, size), np.float32) for size in network.state_sizes)

    def mse() -> float:
        outputs = network.sequence(tf.constant(observations), state, tf.constant(starts))
        return float(np.mean((outputs.numpy()[..., 0] - targets) ** 2))

    before = mse()
    optimizer = FusedAdam(learning_rate=1e-2)
    optimizer.build(network.trainable_variables)
    generator = tf.random.Generator.from_seed(0)
    fit = tf.function(
        lambda: fit_value_sequences(
            network,
            optimizer,
            generator,
            tf.constant(observations),
            tf.constant(starts),
            tuple(tf.constant(part) for part in state),
            tf.constant(targets),
            150,
            8,
        ),
        autograph=False,
    )
    fit()
    assert mse() < 0.1 * before
