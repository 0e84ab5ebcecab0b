"""``policy.distribution: auto`` — pick a built-in distribution from the action space."""

from __future__ import annotations

import gymnasium as gym

from trpo_tf.errors import IncompatibleSpaceError

_AUTO = (
    (gym.spaces.Discrete, "categorical"),
    (gym.spaces.Box, "diag_gaussian"),
    (gym.spaces.MultiDiscrete, "multi_categorical"),
    (gym.spaces.MultiBinary, "bernoulli"),
)


def auto_distribution_name(action_space: gym.Space) -> str:
    """Name of the built-in distribution for ``action_space``.

    Raises:
        IncompatibleSpaceError: no built-in covers this space.
    """
    for space_type, name in _AUTO:
        if isinstance(action_space, space_type):
            return name
    supported = ", ".join(t.__name__ for t, _ in _AUTO)
    raise IncompatibleSpaceError(
        f"policy.distribution 'auto' has no distribution for action space {action_space} "
        f"(auto supports {supported}); name a plug-in distribution in policy.distribution"
    )
