"""The pre-check of a distribution head (:func:`trpo_tf.plugin_checks.check_plugins`).

Eager calls on network outputs derived from real observations, then a trace of the
head's own methods without autograph, as training traces them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf

from trpo_tf import registry
from trpo_tf.errors import TrpoTfError
from trpo_tf.plugin_errors import (
    DISTRIBUTION_KEY,
    check_diagnostics_keys,
    guarded_call,
    plugin_broke,
)
from trpo_tf.testing.head_checker import env_contains

NUMPY_TWIN_TOLERANCE = 1e-4
"""``rtol`` and ``atol`` between the numpy sampler's and TensorFlow's values (float32)."""

_TOLERANCE = {"rtol": NUMPY_TWIN_TOLERANCE, "atol": NUMPY_TWIN_TOLERANCE, "equal_nan": True}


def _brief(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _HeadCheck:
    """Checks of one head; ``fail`` names it and its package."""

    def __init__(self, head: Any, name: str) -> None:
        self.head = head
        self.name = name

    def fail(self, detail: str) -> TrpoTfError:
        return plugin_broke(
            DISTRIBUTION_KEY, registry.DISTRIBUTIONS, self.name, "DistributionHead", detail
        )

    def call(self, call: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return guarded_call(
            DISTRIBUTION_KEY, registry.DISTRIBUTIONS, self.name, call, function, *args, **kwargs
        )

    def tensor(
        self, value: Any, call: str, shape: tuple[int, ...], meaning: str, dtype: Any = None
    ) -> np.ndarray:
        """``value`` as a numpy array of ``shape`` (and ``dtype``), or the error."""
        try:
            array = np.asarray(tf.convert_to_tensor(value))
        except Exception as error:  # noqa: BLE001 - anything that is not a tensor
            raise self.fail(
                f"{call} returned {type(value).__name__}, not a tensor ({error})"
            ) from error
        if array.shape != tuple(shape):
            raise self.fail(
                f"{call} returned shape {list(array.shape)}, expected {list(shape)} = {meaning}"
            )
        if dtype is not None and array.dtype != dtype.as_numpy_dtype:
            raise self.fail(f"{call} returned dtype {array.dtype}, expected {dtype.name}")
        return array


def network_dtype() -> np.dtype:
    """The dtype the policy network emits: Keras' global dtype policy (float32 unless set)."""
    return np.dtype(keras.config.dtype_policy().compute_dtype)


def _network_outputs(observations: np.ndarray, width: int) -> np.ndarray:
    """``[B, width]`` stand-ins for the policy network's outputs on ``observations``.

    A fixed random projection of the (cleaned, clipped) observations through tanh, in
    the network's dtype: outputs of the size a network emits (and features in [-1, 1]
    for a head that reads them), varying with the real observations, without building
    a network.
    """
    rng = np.random.default_rng(0)
    clean = np.clip(np.nan_to_num(observations.astype(np.float64)), -10.0, 10.0)
    projection = rng.normal(size=(clean.shape[1], width)) / np.sqrt(max(clean.shape[1], 1))
    outputs = np.tanh(clean @ projection + rng.normal(scale=0.5, size=width))
    return outputs.astype(network_dtype())


def check_head(
    head: Any, name: str, observations: np.ndarray, action_space: gym.Space, seed: int
) -> np.ndarray:
    """Shapes, dtypes, diagnostics, env actions and the numpy twin of one head.

    Actions are sampled the way rollouts sample them: by the numpy twin when the head
    offers one (its log-probabilities then checked against ``log_prob``), else by
    ``distribution(params).sample()`` as the TensorFlow actor does. (Sampling TFP's
    Beta eagerly costs ~0.8 s the first time, for a call that training with a numpy
    twin never makes.)

    Args:
        head: the guarded head (:func:`trpo_tf.config.build.build_distribution`).
        name: its plug-in name.
        observations: ``[B, observation_dim]`` real observations from the env.
        action_space: the env's action space.
        seed: seeds the samples.

    Returns:
        ``to_env_action`` of the sampled actions, ``[B, ...]``: what the env is
        stepped with.

    Raises:
        PluginError: naming the head, its package and the call that was wrong.
    """
    check = _HeadCheck(head, name)
    _check_attributes(check)
    batch = observations.shape[0]
    action_shape = (batch, *head.action_shape)
    action_meaning = "[batch, *action_shape]"
    net_out = _network_outputs(observations, int(head.num_inputs))
    params = head.params(tf.constant(net_out))
    params_np = check.tensor(
        params, "params(net_out)", (batch, head.param_dim), "[batch, param_dim]"
    )
    if params_np.dtype.kind != "f":
        raise check.fail(f"params(net_out) returned dtype {params_np.dtype}, expected a float")
    if not np.isfinite(params_np).all():
        raise check.fail("params(net_out) returned NaN or infinite values for finite net_out")
    distribution = head.distribution(params)
    twin = None
    if hasattr(head, "numpy_sampler"):
        # The numpy mirror runs the network in float32 whatever Keras' dtype policy is.
        twin = _NumpyTwin(check, net_out.astype(np.float32), params_np, seed)
        actions_np = twin.actions
    else:
        call = "distribution(params).sample()"
        seed_pair = tf.constant([seed % 2**31, 0], tf.int32)
        actions = check.call(call, distribution.sample, seed=seed_pair)
        actions_np = check.tensor(actions, call, action_shape, action_meaning, head.action_dtype)
    call = "distribution(params).log_prob(actions)"
    log_prob = check.tensor(
        check.call(call, distribution.log_prob, tf.constant(actions_np)), call, (batch,), "[batch]"
    )
    for call, function, args in (
        ("distribution(params).entropy()", distribution.entropy, ()),
        (
            "distribution(params).kl_divergence(distribution(params))",
            distribution.kl_divergence,
            (head.distribution(params),),
        ),
    ):
        check.tensor(check.call(call, function, *args), call, (batch,), "[batch]")
    mode = check.tensor(
        head.mode(params), "mode(params)", action_shape, action_meaning, head.action_dtype
    )
    diagnostics = head.diagnostics(params)
    check_diagnostics_keys(diagnostics, name)
    for key, value in diagnostics.items():
        check.tensor(value, f"diagnostics(params)[{key!r}]", (), "a scalar")
    env_actions = _check_env_actions(check, actions_np, action_space)
    if twin is not None:
        twin.agrees(log_prob, mode)
    # After the eager checks, whose messages are clearer.
    check.call("params/diagnostics in tf.function(autograph=False)", _check_traced, head, net_out)
    return env_actions


def _positive_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and value > 0


def _check_attributes(check: _HeadCheck) -> None:
    """``num_inputs``, ``param_dim``, ``action_shape`` and ``action_dtype`` have their types."""
    head = check.head
    for attribute in ("num_inputs", "param_dim"):
        if not _positive_int(getattr(head, attribute)):
            value = getattr(head, attribute)
            raise check.fail(f"{attribute} must be a positive int, got {value!r}")
    shape = head.action_shape
    if not (
        isinstance(shape, tuple) and all(isinstance(d, int | np.integer) and d >= 0 for d in shape)
    ):
        raise check.fail(f"action_shape must be a tuple of non-negative ints, got {shape!r}")
    dtype = head.action_dtype
    if not (isinstance(dtype, tf.DType) and (dtype.is_integer or dtype.is_floating)):
        raise check.fail(f"action_dtype must be an integer or floating tf.DType, got {dtype!r}")


def _check_traced(head: Any, net_out: np.ndarray) -> None:
    """``params`` and ``diagnostics`` trace inside ``tf.function(autograph=False)``.

    Training calls the head only from traced functions, traced without autograph: a
    Python ``if`` on a tensor works eagerly and fails there. The update traces these two
    of the head's own methods in the first iteration; tracing ``mode`` too (what
    evaluation traces) costs up to ~50 ms more for a head whose mode builds a
    distribution (``beta``), tracing the distributions 50-400 ms.
    """

    def traced(net_out: tf.Tensor) -> Any:
        params = head.params(net_out)
        return params, head.diagnostics(params)

    tf.function(traced, autograph=False).get_concrete_function(
        tf.TensorSpec(net_out.shape, tf.as_dtype(net_out.dtype))
    )


def _check_env_actions(
    check: _HeadCheck, actions: np.ndarray, action_space: gym.Space
) -> np.ndarray:
    original = actions.copy()
    env_actions = check.head.to_env_action(actions)
    if not np.array_equal(actions, original):
        raise check.fail(
            "to_env_action(actions) modified its input in place (the rollout stores the raw "
            "sample); map a copy"
        )
    try:
        rows = list(env_actions)
    except TypeError:
        rows = []
    if len(rows) != len(actions):
        raise check.fail(
            f"to_env_action(actions) returned {_brief(env_actions)} for {len(actions)} "
            "actions; it must return one env action per row"
        )
    for index, row in enumerate(rows):
        if not env_contains(action_space, row):
            raise check.fail(
                f"to_env_action(actions) returned row {index} = {_brief(row)} (dtype "
                f"{np.asarray(row).dtype}), which is not in the env's action space {action_space}"
            )
    return env_actions


class _NumpyTwin:
    """The head's numpy sampler on ``net_out``: what rollouts store as β."""

    CALL = "numpy_sampler().sample(net_out, rng)"

    def __init__(self, check: _HeadCheck, net_out: np.ndarray, params: np.ndarray, seed: int):
        head = check.head
        self.check = check
        self.net_out = net_out
        self.sampler = head.numpy_sampler()
        call = self.CALL
        result = check.call(call, self.sampler.sample, net_out.copy(), np.random.default_rng(seed))
        if not (isinstance(result, tuple | list) and len(result) == 3):
            raise check.fail(
                f"{call} returned {_brief(result)}, expected (actions, log_prob, params)"
            )
        batch = net_out.shape[0]
        actions = np.asarray(result[0])
        numpy_dtype = np.dtype(head.action_dtype.as_numpy_dtype)
        # The rollout copies them into an action_dtype buffer: the kind must match.
        if actions.shape != (batch, *head.action_shape) or not np.can_cast(
            actions.dtype, numpy_dtype, casting="same_kind"
        ):
            raise check.fail(
                f"{call} returned actions of shape {list(actions.shape)} dtype {actions.dtype}, "
                f"expected {[batch, *head.action_shape]} {numpy_dtype}"
            )
        self.actions = actions.astype(numpy_dtype)
        self.log_prob = np.asarray(result[1], np.float64)
        twin_params = np.asarray(result[2], np.float64)
        if self.log_prob.shape != (batch,):
            raise check.fail(
                f"{call} returned log_prob of shape {list(self.log_prob.shape)}, expected [{batch}]"
            )
        if twin_params.shape != params.shape or not np.allclose(twin_params, params, **_TOLERANCE):
            raise check.fail(
                f"{call} returned params that differ from params(net_out) "
                f"(max |Δ| {_max_difference(twin_params, params)}); rollouts store them as β"
            )

    def agrees(self, log_prob: np.ndarray, head_mode: np.ndarray) -> None:
        """Its log-probs are ``distribution(params).log_prob`` of its actions; same mode."""
        check, expected = self.check, np.asarray(log_prob, np.float64)
        if not np.allclose(self.log_prob, expected, **_TOLERANCE):
            worst = int(np.argmax(np.nan_to_num(np.abs(self.log_prob - expected), nan=np.inf)))
            raise check.fail(
                f"{self.CALL} returned log_prob that differs from distribution(params).log_prob "
                f"of its actions by up to {_max_difference(self.log_prob, expected)} (e.g. "
                f"{self.log_prob[worst]:.6g} vs {expected[worst]:.6g}); training would use a "
                "wrong β(a|s) in the importance ratio: make the numpy twin compute the same "
                "log-probability"
            )
        call = "numpy_sampler().mode(net_out)"
        mode = np.asarray(check.call(call, self.sampler.mode, self.net_out.copy()))
        if mode.shape != head_mode.shape or not np.allclose(
            mode.astype(np.float64), head_mode.astype(np.float64), **_TOLERANCE
        ):
            raise check.fail(
                f"{call} differs from mode(params) (max |Δ| {_max_difference(mode, head_mode)}); "
                "evaluation would act differently"
            )


def _max_difference(a: np.ndarray, b: np.ndarray) -> str:
    if a.shape != b.shape:
        return f"shapes {list(a.shape)} vs {list(b.shape)}"
    difference = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return f"{np.nanmax(difference, initial=0.0):.3g}"
