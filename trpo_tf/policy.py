"""The policy π_θ: an MLP followed by a distribution head.

θ is the MLP's weights plus the head's own variables (e.g. a Gaussian log-std).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from trpo_tf.interfaces import DistributionHead


class Policy(tf.Module):
    """π_θ(a|s) = head.distribution(head.params(network(s)))."""

    def __init__(self, network: keras.Model, head: DistributionHead) -> None:
        super().__init__(name="policy")
        self.network = network
        self.head = head

    @property
    def policy_variables(self) -> list[Any]:
        """θ as an ordered list: network weights, then head variables."""
        return list(self.network.trainable_variables) + list(self.head.trainable_variables)

    def dist_params(self, observations: tf.Tensor) -> tf.Tensor:
        """``[batch, obs_dim] -> [batch, param_dim]`` distribution parameters."""
        return self.head.params(self.network(observations))

    def distribution(self, params: tf.Tensor) -> Any:
        """Distribution with batch shape ``[batch]`` built from ``params``."""
        return self.head.distribution(params)
