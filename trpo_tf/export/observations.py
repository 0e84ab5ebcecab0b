"""Environment observations, as ``env.step`` returns them, flattened inside the graph.

trpo_tf trains on observations flattened by gymnasium's ``FlattenObservation``
(``gymnasium.spaces.flatten``). The export's ``env_*`` signatures take the
observation as the environment returns it, batched, and flatten it with the same
rules, so a server needs neither gymnasium nor the flattening rules:

* Box ``shape``: ``[batch, *shape]`` of the space's dtype, reshaped to
  ``[batch, prod(shape)]``.
* Discrete ``(n, start)``: ``[batch]`` int64, one-hot ``[batch, n]`` of ``x − start``.
* MultiDiscrete ``nvec, start``: ``[batch, *shape]`` int64, one one-hot block per
  element (``nvec[i]`` wide) concatenated in row-major order.
* MultiBinary ``shape``: ``[batch, *shape]`` int8, reshaped.
* Dict / Tuple: one input per leaf, concatenated in the space's order (a Dict's
  keys as gymnasium keeps them: sorted when built from a plain dict).

Each leaf is one signature input named after its path: ``observation`` for a
single space, ``observation_<key>`` / ``observation_<index>`` (nested paths joined
by ``_``) for Dict and Tuple leaves, other characters than letters, digits and
``_`` replaced by ``_``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import tensorflow as tf

from trpo_tf.errors import IncompatibleSpaceError

INPUT_NAME = "observation"

Flattener = Callable[[Any], tf.Tensor]


def _input_name(path: tuple[str, ...]) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", "_".join((INPUT_NAME, *path)))


def _children(space: gym.Space) -> list[tuple[Any, gym.Space]] | None:
    """(key or index, subspace) of a Dict or Tuple in the flattening's order; None for a leaf.

    The one walk order of both the signature's inputs and :func:`observation_leaves`.
    """
    if isinstance(space, gym.spaces.Dict):
        return list(space.spaces.items())
    if isinstance(space, gym.spaces.Tuple):
        return list(enumerate(space.spaces))
    return None


def _leaf(space: gym.Space, name: str) -> tuple[tf.TensorSpec, Flattener]:
    """The input spec of one non-composite space and its map to ``[batch, dim]`` float32."""
    if isinstance(space, gym.spaces.Discrete):
        n, start = int(space.n), int(space.start)
        spec = tf.TensorSpec([None], tf.int64, name=name)
        return spec, lambda x: tf.one_hot(tf.cast(x, tf.int64) - start, n, dtype=tf.float32)
    if isinstance(space, gym.spaces.MultiDiscrete):
        nvec = np.asarray(space.nvec, np.int64).reshape(-1)
        start = np.asarray(space.start, np.int64).reshape(-1)
        offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]]).astype(np.int64)
        width = int(nvec.sum())
        spec = tf.TensorSpec([None, *space.shape], tf.int64, name=name)

        def multi_one_hot(x: tf.Tensor) -> tf.Tensor:
            # Each element's index into the concatenated blocks; one row of ones per element.
            flat = tf.reshape(tf.cast(x, tf.int64), [-1, nvec.size]) - start
            return tf.reduce_sum(tf.one_hot(flat + offsets, width, dtype=tf.float32), axis=1)

        return spec, multi_one_hot
    if isinstance(space, gym.spaces.Box | gym.spaces.MultiBinary):
        size = int(np.prod(space.shape))
        spec = tf.TensorSpec([None, *space.shape], tf.as_dtype(space.dtype), name=name)
        return spec, lambda x: tf.reshape(tf.cast(x, tf.float32), [-1, size])
    raise IncompatibleSpaceError(
        f"cannot export env observations of {space}: the env_* signatures take Box, "
        "Discrete, MultiDiscrete, MultiBinary, and Dict/Tuple of them"
    )


def _build(space: gym.Space, path: tuple[str, ...]) -> tuple[list[tf.TensorSpec], Flattener]:
    """Leaf specs in order, and ``[leaf tensors] -> [batch, dim]`` for ``space``."""
    children = _children(space)
    if children is not None:
        specs: list[tf.TensorSpec] = []
        parts: list[tuple[slice, Flattener]] = []
        for key, child in children:
            child_specs, child_fn = _build(child, (*path, str(key)))
            parts.append((slice(len(specs), len(specs) + len(child_specs)), child_fn))
            specs += child_specs
        return specs, lambda leaves: tf.concat([fn(leaves[s]) for s, fn in parts], axis=-1)
    spec, leaf_fn = _leaf(space, _input_name(path))
    return [spec], lambda leaves: leaf_fn(leaves[0])


def env_observation_inputs(space: gym.Space) -> tuple[dict[str, tf.TensorSpec], Flattener]:
    """Signature inputs for batched env observations of ``space``, and their flattening.

    Returns:
        ``{input name: TensorSpec}`` in the space's order, and a function of a dict
        of tensors with those names that returns ``[batch, flatdim(space)]`` float32,
        equal row by row to ``gymnasium.spaces.flatten(space, observation)``.

    Raises:
        IncompatibleSpaceError: a leaf space other than those above, or two leaves
            whose names collide once their characters are replaced.
    """
    specs, flatten = _build(space, ())
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise IncompatibleSpaceError(
            f"cannot export env observations of {space}: its keys give the signature input "
            f"name(s) {', '.join(repeated)} twice; rename the Dict keys"
        )
    return {spec.name: spec for spec in specs}, lambda inputs: flatten(
        [inputs[name] for name in names]
    )


def observation_leaves(space: gym.Space, observation: Any) -> list[tuple[gym.Space, Any]]:
    """(leaf space, leaf value) pairs of a Dict/Tuple ``observation``, in the space's order."""
    children = _children(space)
    if children is None:
        return [(space, observation)]
    pairs = []
    for key, child in children:
        try:
            value = observation[key]
        except (KeyError, IndexError, TypeError) as error:
            raise IncompatibleSpaceError(
                f"observation has no {key!r} ({type(error).__name__}); the env's observation "
                f"space is {space}"
            ) from error
        pairs += observation_leaves(child, value)
    return pairs
