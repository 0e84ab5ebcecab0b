"""Monte Carlo advantages: discounted return minus the value baseline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trpo_tf.advantages.gae import _check_unused, discounted_reverse_sum
from trpo_tf.interfaces import AdvantageInputs, AdvantageOutputs


@dataclass(frozen=True)
class MonteCarloEstimator:
    """Â_t = G_t − V(s_t) with G_t = r_t + γ (1 − end_t) G_{t+1}.

    At an episode end G_t bootstraps: r_t + γ V(s_{t+1}) when truncated, r_t when
    terminated; at the end of the rollout it bootstraps from V(s_T). Value targets
    are G_t. (Equivalent to GAE with λ = 1.)
    """

    gamma: float = 0.99

    def __call__(self, inputs: AdvantageInputs) -> AdvantageOutputs:
        # At cut points (episode end or rollout end) the return bootstraps from
        # V(next state), zero when terminated; elsewhere it recurses on G_{t+1}.
        cut = inputs.episode_end.copy()
        cut[-1] = 1.0
        bootstrap = self.gamma * (1.0 - inputs.terminated) * inputs.next_values * cut
        returns = discounted_reverse_sum(inputs.rewards + bootstrap, self.gamma, cut)
        return AdvantageOutputs(advantages=returns - inputs.values, value_targets=returns)


def make_mc(gamma: float = 0.99, lam: float | None = None, **kwargs: Any) -> MonteCarloEstimator:
    """Entry point ``mc`` (``lam`` is accepted and ignored: returns are full-length)."""
    _check_unused("mc", kwargs)
    return MonteCarloEstimator(gamma=float(gamma))
