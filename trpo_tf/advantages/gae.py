"""Generalized Advantage Estimation (Schulman et al., 2016)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trpo_tf.errors import ConfigError
from trpo_tf.interfaces import AdvantageInputs, AdvantageOutputs


def discounted_reverse_sum(
    deltas: np.ndarray, discount: float, episode_end: np.ndarray
) -> np.ndarray:
    """x_t = δ_t + discount · (1 − end_t) · x_{t+1}, with x_T = 0; arrays ``[T, n_envs]``."""
    out = np.empty_like(deltas)
    running = np.zeros(deltas.shape[1:], dtype=deltas.dtype)
    carry = discount * (1.0 - episode_end)  # one array op instead of two per step
    for t in range(deltas.shape[0] - 1, -1, -1):
        running = deltas[t] + carry[t] * running
        out[t] = running
    return out


@dataclass(frozen=True)
class GeneralizedAdvantageEstimator:
    """GAE(γ, λ).

    δ_t = r_t + γ (1 − terminated_t) V(s_{t+1}) − V(s_t)
    Â_t = Σ_k (γλ)^k δ_{t+k}, cut at episode ends (terminated or truncated);
    a truncated step still bootstraps through V(final observation) in δ_t.
    Value targets are the λ-returns Â_t + V(s_t).
    """

    gamma: float = 0.99
    lam: float = 0.95

    def __call__(self, inputs: AdvantageInputs) -> AdvantageOutputs:
        deltas = (
            inputs.rewards
            + self.gamma * (1.0 - inputs.terminated) * inputs.next_values
            - inputs.values
        )
        advantages = discounted_reverse_sum(deltas, self.gamma * self.lam, inputs.episode_end)
        return AdvantageOutputs(advantages=advantages, value_targets=advantages + inputs.values)


def _check_unused(name: str, kwargs: dict[str, Any]) -> None:
    if kwargs:
        keys = ", ".join(sorted(kwargs))
        raise ConfigError(f"advantage.kwargs: estimator '{name}' takes no parameters {keys}")


def make_gae(
    gamma: float = 0.99, lam: float = 0.95, **kwargs: Any
) -> GeneralizedAdvantageEstimator:
    """Entry point ``gae``."""
    _check_unused("gae", kwargs)
    return GeneralizedAdvantageEstimator(gamma=float(gamma), lam=float(lam))
