"""``check_advantage_estimator``: an estimator against the AdvantageEstimator contract."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from trpo_tf.advantages.gae import GeneralizedAdvantageEstimator
from trpo_tf.interfaces import AdvantageInputs

_FIELDS = ("rewards", "values", "next_values", "terminated", "episode_end", "log_rho")


def random_advantage_inputs(
    T: int = 16, N: int = 3, seed: int = 0, log_rho_scale: float = 0.0
) -> AdvantageInputs:
    """A random time-major rollout ``[T, N]`` float32 with episode ends.

    Every env but the last terminates once and is truncated once (the truncated step
    bootstraps through a separate V(final observation)); the last env has no episode
    end at all. ``log_rho`` is ``log_rho_scale`` times standard normal noise
    (0 = on-policy).

    Args:
        T: steps per env (at least 4 for episode ends to be placed).
        N: number of envs (at least 1).
        seed: numpy seed.
        log_rho_scale: scale of the random log importance ratios.
    """
    rng = np.random.default_rng(seed)
    terminated = np.zeros((T, N), np.float32)
    truncated = np.zeros((T, N), np.float32)
    if T >= 4:
        for env in range(N - 1):
            first, second = sorted(rng.choice(np.arange(1, T), size=2, replace=False))
            if env % 2:
                terminated[first, env], truncated[second, env] = 1.0, 1.0
            else:
                truncated[first, env], terminated[second, env] = 1.0, 1.0
    values = rng.normal(size=(T, N)).astype(np.float32)
    next_values = np.concatenate([values[1:], rng.normal(size=(1, N))]).astype(np.float32)
    final_values = rng.normal(size=(T, N)).astype(np.float32)
    next_values = np.where(truncated > 0, final_values, next_values).astype(np.float32)
    return AdvantageInputs(
        rewards=rng.normal(size=(T, N)).astype(np.float32),
        values=values,
        next_values=next_values,
        terminated=terminated,
        episode_end=np.maximum(terminated, truncated),
        log_rho=(log_rho_scale * rng.normal(size=(T, N))).astype(np.float32),
    )


class _Checker:
    def __init__(self, factory: Callable[..., Any]) -> None:
        name = getattr(factory, "__qualname__", None) or repr(factory)
        self.context = f"check_advantage_estimator({name})"

    def expect(self, condition: Any, check: str, detail: str) -> None:
        if not condition:
            raise AssertionError(f"{self.context}: {check}: {detail}")


def _run(
    checker: _Checker, estimator: Callable[..., Any], inputs: AdvantageInputs, label: str
) -> tuple[np.ndarray, np.ndarray]:
    copies = {name: getattr(inputs, name).copy() for name in _FIELDS}
    try:
        outputs = estimator(inputs)
    except Exception as error:
        raise AssertionError(
            f"{checker.context}: calling the estimator on {label} raised "
            f"{type(error).__name__}: {error}"
        ) from error
    for name in _FIELDS:
        checker.expect(
            np.array_equal(getattr(inputs, name), copies[name]),
            "inputs unchanged",
            f"the estimator modified inputs.{name} in place ({label})",
        )
    checker.expect(
        hasattr(outputs, "advantages") and hasattr(outputs, "value_targets"),
        "returns AdvantageOutputs",
        f"got {type(outputs).__name__} ({label})",
    )
    shape = inputs.rewards.shape
    arrays = []
    for name in ("advantages", "value_targets"):
        array = np.asarray(getattr(outputs, name))
        checker.expect(
            array.shape == shape, f"{name} shape", f"{array.shape}, expected {shape} ({label})"
        )
        checker.expect(
            np.issubdtype(array.dtype, np.floating),
            f"{name} dtype",
            f"{array.dtype}, expected a float dtype ({label})",
        )
        checker.expect(
            bool(np.all(np.isfinite(array))), f"{name} finite", f"non-finite values ({label})"
        )
        arrays.append(array.astype(np.float64))
    return arrays[0], arrays[1]


def _reference_estimator(reference: Any, gamma: float, lam: float) -> Callable[..., Any] | None:
    if reference is None:
        return None
    if isinstance(reference, str):
        if reference != "gae":
            raise ValueError(
                f"on_policy_reference must be 'gae', None or an estimator, got {reference!r}"
            )
        return GeneralizedAdvantageEstimator(gamma=gamma, lam=lam)
    return reference


def check_advantage_estimator(
    factory: Callable[..., Any],
    *,
    gamma: float = 0.99,
    lam: float = 0.95,
    on_policy_reference: Any = "gae",
    seed: int = 0,
    atol: float = 1e-5,
    **kwargs: Any,
) -> Any:
    """Checks a ``trpo_tf.advantages`` factory against the AdvantageEstimator contract.

    Builds ``estimator = factory(gamma=gamma, lam=lam, **kwargs)`` (as ``advantage:`` in an
    experiment would) and runs it on :func:`random_advantage_inputs` rollouts. Checks:

    * ``advantages`` and ``value_targets`` are float ``[T, N]`` and finite, for on-policy
      and off-policy (random ``log_rho``) rollouts, for ``T = 1`` and ``N = 1``;
    * the inputs are not modified, and the same inputs give the same outputs;
    * on-policy agreement: with ``log_rho = 0`` both outputs equal those of
      ``on_policy_reference`` within ``atol`` — by default GAE with the same γ and λ
      (:class:`~trpo_tf.advantages.gae.GeneralizedAdvantageEstimator`). Pass another
      estimator (anything ``inputs -> AdvantageOutputs``, e.g. GAE with λ = 1 for a
      Monte-Carlo estimator) or ``None`` to skip this check;
    * the recursion stops at episode ends: changing anything after the first episode end
      of an env leaves that env's outputs up to and including the end unchanged;
    * ``next_values`` of terminated steps are ignored (no bootstrap from a terminal state).

    Args:
        factory: the entry-point object, ``factory(gamma=..., lam=..., **kwargs)``.
        gamma, lam: discount and λ given to the factory (and to the GAE reference).
        on_policy_reference: ``"gae"``, ``None`` or an estimator to compare with at
            ``log_rho = 0``.
        seed: seeds the random rollouts.
        atol: absolute tolerance of the equality checks (outputs are float32).
        **kwargs: passed to the factory (``advantage.kwargs``).

    Returns:
        The estimator that was checked.

    Raises:
        AssertionError: a check failed; the message names the check and the values.
    """
    checker = _Checker(factory)
    try:
        estimator = factory(gamma=gamma, lam=lam, **kwargs)
    except Exception as error:
        raise AssertionError(
            f"{checker.context}: factory(gamma={gamma}, lam={lam}, **{kwargs}) raised "
            f"{type(error).__name__}: {error}"
        ) from error
    checker.expect(callable(estimator), "AdvantageEstimator protocol", "result is not callable")

    on_policy = random_advantage_inputs(T=16, N=4, seed=seed)
    off_policy = random_advantage_inputs(T=16, N=4, seed=seed + 1, log_rho_scale=0.7)
    advantages, targets = _run(checker, estimator, on_policy, "an on-policy rollout")
    again = _run(checker, estimator, on_policy, "the same rollout again")
    checker.expect(
        np.array_equal(advantages, again[0]) and np.array_equal(targets, again[1]),
        "deterministic",
        "two calls on the same inputs gave different outputs",
    )
    _run(checker, estimator, off_policy, "an off-policy rollout (log_rho != 0)")
    _run(checker, estimator, random_advantage_inputs(T=1, N=3, seed=seed), "a T=1 rollout")
    _run(checker, estimator, random_advantage_inputs(T=9, N=1, seed=seed), "an N=1 rollout")

    reference = _reference_estimator(on_policy_reference, gamma, lam)
    if reference is not None:
        expected = reference(on_policy)
        name = (
            f"GAE(gamma={gamma}, lam={lam})"
            if isinstance(on_policy_reference, str)
            else repr(on_policy_reference)
        )
        for label, got, want in (
            ("advantages", advantages, expected.advantages),
            ("value_targets", targets, expected.value_targets),
        ):
            want = np.asarray(want, np.float64)
            error = float(np.max(np.abs(got - want)))
            checker.expect(
                error <= atol * (1.0 + float(np.max(np.abs(want)))),
                f"on-policy {label} (log_rho = 0) equal {name}",
                f"max |difference| {error:.3g}; pass on_policy_reference=None if the estimator "
                "is not meant to reduce to it",
            )

    for inputs, label in ((on_policy, "on-policy"), (off_policy, "off-policy")):
        _check_episode_cut(checker, estimator, inputs, label)
        _check_terminal_bootstrap(checker, estimator, inputs, label)
    return estimator


def _check_episode_cut(
    checker: _Checker, estimator: Callable[..., Any], inputs: AdvantageInputs, label: str
) -> None:
    advantages, targets = _run(checker, estimator, inputs, f"an {label} rollout")
    rng = np.random.default_rng(1)
    changed = {name: getattr(inputs, name).copy() for name in _FIELDS}
    cuts = {}
    for env in range(inputs.rewards.shape[1]):
        ends = np.flatnonzero(inputs.episode_end[:, env])
        if ends.size:
            cut = int(ends[0])
            cuts[env] = cut
            later = slice(cut + 1, None)
            for name in ("rewards", "values", "next_values", "log_rho"):
                noise = rng.normal(size=changed[name][later, env].shape)
                changed[name][later, env] += noise.astype(np.float32)
    perturbed = dataclasses.replace(inputs, **changed)
    new_advantages, new_targets = _run(
        checker, estimator, perturbed, f"a perturbed {label} rollout"
    )
    for env, cut in cuts.items():
        same = slice(0, cut + 1)
        checker.expect(
            np.allclose(advantages[same, env], new_advantages[same, env], atol=1e-6)
            and np.allclose(targets[same, env], new_targets[same, env], atol=1e-6),
            "recursion stops at episode_end",
            f"{label}: env {env}'s outputs up to its episode end at t={cut} changed when "
            "only later steps changed",
        )


def _check_terminal_bootstrap(
    checker: _Checker, estimator: Callable[..., Any], inputs: AdvantageInputs, label: str
) -> None:
    if not inputs.terminated.any():
        return
    advantages, targets = _run(checker, estimator, inputs, f"an {label} rollout")
    next_values = np.where(inputs.terminated > 0, 1.0e3, inputs.next_values).astype(np.float32)
    changed = dataclasses.replace(inputs, next_values=next_values)
    new_advantages, new_targets = _run(checker, estimator, changed, f"an {label} rollout")
    checker.expect(
        np.allclose(advantages, new_advantages, atol=1e-6)
        and np.allclose(targets, new_targets, atol=1e-6),
        "no bootstrap from terminal states",
        f"{label}: outputs changed with next_values of terminated steps (multiply by "
        "1 - terminated)",
    )
