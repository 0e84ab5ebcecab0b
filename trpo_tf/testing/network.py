"""``check_network``: a network factory against the NetworkFactory contract."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf

from trpo_tf.errors import ConfigError
from trpo_tf.interfaces import NetworkSpec
from trpo_tf.networks.rnn import is_recurrent


class _Checker:
    def __init__(self, factory: Callable[..., Any], space: gym.Space) -> None:
        name = getattr(factory, "__qualname__", None) or repr(factory)
        self.context = f"check_network({name}, {space})"
        self.factory = factory

    def expect(self, condition: bool, check: str, detail: str) -> None:
        if not condition:
            raise AssertionError(f"{self.context}: {check}: {detail}")

    def build(self, spec: NetworkSpec, kwargs: dict[str, Any]) -> keras.Model:
        try:
            network = self.factory(spec, **kwargs)
        except Exception as error:
            raise AssertionError(
                f"{self.context}: factory(spec, **{kwargs}) raised {type(error).__name__}: {error}"
            ) from error
        self.expect(
            isinstance(network, keras.Model),
            "returns a keras.Model",
            f"got {type(network).__name__}",
        )
        self.expect(
            bool(network.trainable_variables),
            "built with trainable weights",
            "the model has no trainable variables (build it: start with keras.Input)",
        )
        return network


def _observations(space: gym.Space, batch_size: int, seed: int) -> np.ndarray:
    """``[batch_size, flatdim]`` float32 samples of ``space``, flattened as training does."""
    space = (
        gym.spaces.utils.flatten_space(space) if not isinstance(space, gym.spaces.Box) else space
    )
    space.seed(seed)
    rows = [np.asarray(space.sample(), np.float64).reshape(-1) for _ in range(batch_size)]
    # Unbounded Box samples are standard normal; bounded ones fill the range.
    return np.stack(rows).astype(np.float32)


def _weights(network: keras.Model) -> list[np.ndarray]:
    return [np.asarray(v.value) for v in network.trainable_variables]


def check_network(
    factory: Callable[..., Any],
    observation_space: gym.Space,
    *,
    output_dim: int = 3,
    hidden: Sequence[int] = (16,),
    activation: str = "tanh",
    batch_size: int = 5,
    seed: int = 0,
    jit_compile: bool = True,
    saved_model: bool = True,
    features: bool = True,
    **kwargs: Any,
) -> None:
    """Checks a ``trpo_tf.networks`` factory against the NetworkFactory contract.

    Builds ``factory(spec, **kwargs)`` for a :class:`~trpo_tf.interfaces.NetworkSpec` of
    ``observation_space`` (the env's own, e.g. an image Box) as trpo_tf does, feeds it
    samples of that space flattened to ``[batch, observation_dim]`` float32 (what
    training stores) and checks:

    * a built ``keras.Model`` with trainable weights; the same spec builds the same
      weights (the seed is the spec's), another seed other weights;
    * output ``[batch, output_width]`` float32 and finite, for batches of 1 and
      ``batch_size``; each row depends on its own observation alone (no batch
      statistics) and calling twice gives the same result (no dropout);
    * with ``append_features`` (``features=True``; skipped when the factory raises
      ``ConfigError`` for it) the output is ``[batch, output_dim + hidden[-1]]``;
    * gradients of the output reach every trainable variable, and a Hessian-vector
      product and a Jacobian-vector product (both Fisher-vector products of the update)
      are finite;
    * the same outputs inside ``tf.function(autograph=False)``, and with
      ``jit_compile=True`` (XLA) when ``jit_compile``;
    * weights written by ``tf.train.Checkpoint`` restore into a network built with
      another seed, and (``saved_model``) a ``tf.Module`` calling it survives
      ``tf.saved_model.save``/``load`` with the same outputs;
    * for a recurrent network (one with ``state_sizes``, ``step`` and ``sequence``:
      :class:`~trpo_tf.interfaces.RecurrentNetwork`): ``initial_state`` is zeros of
      ``state_sizes``, ``step`` from it equals ``call``, and ``sequence`` equals
      ``step`` repeated with the state zeroed where ``starts`` is 1 (eager and
      compiled).

    Args:
        factory: the entry-point object, ``factory(spec, **kwargs) -> keras.Model``.
        observation_space: the env observation space to build for.
        output_dim, hidden, activation: the spec's (a policy head's width, the
            ``hidden`` / ``activation`` keys).
        batch_size: rows per batch.
        seed: the spec's seed and the sampling seed.
        jit_compile: also compare under XLA.
        saved_model: also check a SavedModel round trip (slower).
        features: also check ``append_features``.
        **kwargs: passed to the factory (``policy.network``'s keys besides ``name``).

    Raises:
        AssertionError: a check failed; the message names the check.
    """
    checker = _Checker(factory, observation_space)
    observations = _observations(observation_space, batch_size, seed)
    spec = NetworkSpec(
        observation_space=observation_space,
        observation_dim=int(observations.shape[1]),
        output_dim=int(output_dim),
        hidden=tuple(int(h) for h in hidden),
        activation=activation,
        output_gain=0.01,
        seed=seed,
        name="policy_network",
    )
    network = checker.build(spec, kwargs)
    outputs = _check_outputs(checker, network, spec, observations)
    _check_seeds(checker, network, spec, kwargs)
    if features and spec.hidden:
        _check_features(checker, spec, kwargs, observations)
    _check_gradients(checker, network, observations)
    _check_compiled(checker, network, observations, outputs, jit_compile)
    _check_checkpoint(checker, network, spec, kwargs, observations, outputs)
    if saved_model:
        _check_saved_model(checker, network, spec, observations, outputs)
    if is_recurrent(network):
        _check_recurrent(checker, network, observations, outputs, jit_compile)


def _check_recurrent(
    checker: _Checker,
    network: keras.Model,
    observations: np.ndarray,
    outputs: np.ndarray,
    jit_compile: bool,
    length: int = 4,
) -> None:
    """The RecurrentNetwork members: state sizes, zero initial state, ``step`` from it
    equal to ``call``, and ``sequence`` equal to ``step`` repeated with resets."""
    sizes = tuple(network.state_sizes)
    checker.expect(
        len(sizes) > 0 and all(isinstance(s, int) and s > 0 for s in sizes),
        "state_sizes",
        f"must be a non-empty tuple of positive ints, got {sizes!r}",
    )
    batch = observations.shape[0]
    initial = tuple(network.initial_state(batch))
    checker.expect(
        [tuple(part.shape) for part in initial] == [(batch, s) for s in sizes]
        and all(not np.any(np.asarray(part)) for part in initial),
        "initial_state",
        f"must be zeros [batch, size] per state_sizes {sizes}, got shapes "
        f"{[tuple(part.shape) for part in initial]}",
    )
    x = tf.constant(observations)
    stepped, state = network.step(x, initial)
    checker.expect(
        np.allclose(stepped.numpy(), outputs, rtol=1e-5, atol=1e-6),
        "step from the initial state equals call",
        f"differs by {np.abs(stepped.numpy() - outputs).max():.3g}",
    )
    checker.expect(
        [tuple(part.shape) for part in state] == [(batch, s) for s in sizes],
        "step returns the next state",
        f"shapes {[tuple(part.shape) for part in state]}, expected {sizes} wide",
    )
    rng = np.random.default_rng(0)
    sequence = np.stack([rng.permutation(observations) for _ in range(length)], axis=1)
    starts = np.zeros((batch, length), np.float32)
    starts[0, length // 2] = 1.0
    state = tuple(tf.constant(rng.normal(size=(batch, s)).astype(np.float32)) for s in sizes)
    expected = []
    step_state = state
    for t in range(length):
        keep = tf.constant(1.0 - starts[:, t : t + 1])
        step_state = tuple(part * keep for part in step_state)
        output, step_state = network.step(tf.constant(sequence[:, t]), step_state)
        expected.append(output.numpy())
    expected = np.stack(expected, axis=1)
    modes = [False, True] if jit_compile else [False]
    for xla in modes:
        function = tf.function(network.sequence, autograph=False, jit_compile=xla)
        actual = function(tf.constant(sequence), state, tf.constant(starts)).numpy()
        checker.expect(
            actual.shape == expected.shape and np.allclose(actual, expected, atol=1e-5),
            f"sequence equals step repeated with resets{' under XLA' if xla else ''}",
            f"differs by {np.abs(actual - expected).max():.3g}"
            if actual.shape == expected.shape
            else f"shape {actual.shape}, expected {expected.shape}",
        )


def _check_outputs(
    checker: _Checker, network: keras.Model, spec: NetworkSpec, observations: np.ndarray
) -> np.ndarray:
    batch = observations.shape[0]
    outputs = network(tf.constant(observations))
    checker.expect(
        tuple(outputs.shape) == (batch, spec.output_width),
        "output shape",
        f"got {list(outputs.shape)}, expected [{batch}, {spec.output_width}] = "
        "[batch, output_width]",
    )
    checker.expect(outputs.dtype == tf.float32, "output dtype", f"got {outputs.dtype.name}")
    values = outputs.numpy()
    checker.expect(np.isfinite(values).all(), "finite outputs", f"got {values}")
    again = network(tf.constant(observations)).numpy()
    checker.expect(
        np.array_equal(values, again), "deterministic", "two calls gave different outputs"
    )
    rows = np.concatenate(
        [network(tf.constant(observations[i : i + 1])).numpy() for i in range(batch)]
    )
    checker.expect(
        np.allclose(rows, values, rtol=1e-5, atol=1e-6),
        "rows are independent",
        f"one row at a time differs from the batch by {np.abs(rows - values).max():.3g}: "
        "the output of a row must depend on its own observation alone (no batch statistics)",
    )
    return values


def _check_seeds(
    checker: _Checker, network: keras.Model, spec: NetworkSpec, kwargs: dict[str, Any]
) -> None:
    same = checker.build(spec, kwargs)
    for a, b in zip(_weights(network), _weights(same), strict=True):
        checker.expect(
            np.array_equal(a, b),
            "the spec's seed fixes the weights",
            "two builds of one spec have different weights; seed every initializer from spec.seed",
        )
    other = checker.build(NetworkSpec(**{**vars(spec), "seed": spec.seed + 1}), kwargs)
    checker.expect(
        any(
            not np.array_equal(a, b)
            for a, b in zip(_weights(network), _weights(other), strict=True)
        ),
        "the spec's seed fixes the weights",
        "spec.seed + 1 built the same weights; seed the initializers from spec.seed",
    )


def _check_features(
    checker: _Checker, spec: NetworkSpec, kwargs: dict[str, Any], observations: np.ndarray
) -> None:
    with_features = NetworkSpec(**{**vars(spec), "append_features": True})
    try:
        network = checker.factory(with_features, **kwargs)
    except ConfigError:
        return  # declined with a message for users: heads that read features cannot use it
    outputs = network(tf.constant(observations))
    checker.expect(
        tuple(outputs.shape) == (observations.shape[0], with_features.output_width),
        "append_features",
        f"got {list(outputs.shape)}, expected [batch, output_dim + hidden[-1]] = "
        f"[{observations.shape[0]}, {with_features.output_width}] (end in "
        "trpo_tf.networks.DenseWithFeatures)",
    )


def _check_gradients(checker: _Checker, network: keras.Model, observations: np.ndarray) -> None:
    variables = network.trainable_variables
    x = tf.constant(observations)
    with tf.GradientTape(persistent=True) as outer:
        with tf.GradientTape() as inner:
            loss = tf.reduce_sum(tf.math.reduce_logsumexp(network(x), axis=-1))
        grads = inner.gradient(loss, variables)
        missing = [v.path for v, g in zip(variables, grads, strict=True) if g is None]
        checker.expect(not missing, "gradients reach every variable", f"none for {missing}")
        tangents = [tf.ones_like(g) for g in grads]
        dot = tf.add_n([tf.reduce_sum(g * t) for g, t in zip(grads, tangents, strict=True)])
    hvp = outer.gradient(dot, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    checker.expect(
        all(np.isfinite(h.numpy()).all() for h in hvp),
        "finite Hessian-vector product",
        "the second derivative of the output has NaN or infinite entries",
    )
    with tf.autodiff.ForwardAccumulator(
        [v.value for v in variables], [tf.ones_like(v.value) for v in variables]
    ) as accumulator:
        outputs = network(x)
    jvp = accumulator.jvp(outputs)
    checker.expect(
        jvp is not None and np.isfinite(jvp.numpy()).all(),
        "finite Jacobian-vector product",
        "forward-mode differentiation of the output failed or is not finite",
    )


def _check_compiled(
    checker: _Checker,
    network: keras.Model,
    observations: np.ndarray,
    outputs: np.ndarray,
    jit_compile: bool,
) -> None:
    modes = [False, True] if jit_compile else [False]
    # A new function per mode, traced once each: TensorFlow's retracing warning counts
    # them together when a test checks several networks.
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        for xla in modes:
            _compare_compiled(checker, network, observations, outputs, xla)
    finally:
        logger.setLevel(level)


def _compare_compiled(
    checker: _Checker,
    network: keras.Model,
    observations: np.ndarray,
    outputs: np.ndarray,
    xla: bool,
) -> None:
    what = "tf.function(jit_compile=True)" if xla else "tf.function"
    function = tf.function(lambda x: network(x), autograph=False, jit_compile=xla)
    try:
        compiled = function(tf.constant(observations)).numpy()
    except Exception as error:
        raise AssertionError(
            f"{checker.context}: inside {what}: raised {type(error).__name__}: "
            f"{' '.join(str(error).split())[:300]}"
        ) from error
    checker.expect(
        np.allclose(compiled, outputs, rtol=1e-4, atol=1e-5),
        f"same outputs inside {what}",
        f"differs from eager by {np.abs(compiled - outputs).max():.3g}",
    )


def _check_checkpoint(
    checker: _Checker,
    network: keras.Model,
    spec: NetworkSpec,
    kwargs: dict[str, Any],
    observations: np.ndarray,
    outputs: np.ndarray,
) -> None:
    restored = checker.build(NetworkSpec(**{**vars(spec), "seed": spec.seed + 1}), kwargs)
    with tempfile.TemporaryDirectory() as directory:
        path = tf.train.Checkpoint(network=network).write(f"{directory}/weights")
        tf.train.Checkpoint(network=restored).read(path).assert_consumed()
    checker.expect(
        np.array_equal(restored(tf.constant(observations)).numpy(), outputs),
        "checkpoint round trip",
        "a network restored from a checkpoint computes other outputs",
    )


def _check_saved_model(
    checker: _Checker,
    network: keras.Model,
    spec: NetworkSpec,
    observations: np.ndarray,
    outputs: np.ndarray,
) -> None:
    module = tf.Module()
    module.network = network
    module.call = tf.function(
        lambda x: network(x),
        input_signature=[tf.TensorSpec([None, spec.observation_dim], tf.float32)],
        autograph=False,
    )
    with tempfile.TemporaryDirectory() as directory:
        try:
            tf.saved_model.save(module, directory)
            loaded = tf.saved_model.load(directory)
            served = loaded.call(tf.constant(observations)).numpy()
        except Exception as error:
            raise AssertionError(
                f"{checker.context}: SavedModel round trip raised {type(error).__name__}: "
                f"{' '.join(str(error).split())[:300]}"
            ) from error
    checker.expect(
        np.allclose(served, outputs, rtol=1e-5, atol=1e-6),
        "SavedModel round trip",
        f"the loaded model's outputs differ by {np.abs(served - outputs).max():.3g}",
    )
