"""Gymnasium spaces as JSON in the export metadata (infinite limits as strings)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from trpo_tf.errors import IncompatibleSpaceError


def _json_number(value: float | int) -> float | int | str:
    """JSON has no infinity: unbounded Box limits are written ``"inf"`` / ``"-inf"``."""
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else "-inf"
    return value


def _json_array(array: np.ndarray) -> Any:
    if array.ndim == 0:
        return _json_number(array.item())
    return [_json_array(item) for item in array]


def _from_json_array(data: Any, dtype: np.dtype) -> np.ndarray:
    def convert(item: Any) -> Any:
        if isinstance(item, list):
            return [convert(x) for x in item]
        return float(item) if isinstance(item, str) else item

    return np.asarray(convert(data), dtype=dtype)


def space_to_json(space: gym.Space) -> dict[str, Any]:
    """A small JSON description of a Box, Discrete, MultiDiscrete or MultiBinary space.

    Box: ``{"type": "Box", "shape", "dtype", "low", "high"}`` (nested lists with
    the space's shape; infinite limits as ``"inf"``/``"-inf"``).
    Discrete: ``{"type": "Discrete", "shape": [], "dtype", "n", "start"}``.
    MultiDiscrete: ``{"type": "MultiDiscrete", "shape", "dtype", "nvec", "start"}``.
    MultiBinary: ``{"type": "MultiBinary", "shape", "dtype"}``.
    Dict: ``{"type": "Dict", "spaces": [[key, space JSON], ...]}`` in the space's order.
    Tuple: ``{"type": "Tuple", "spaces": [space JSON, ...]}``.

    Raises:
        IncompatibleSpaceError: any other space.
    """
    if isinstance(space, gym.spaces.Dict):
        # [key, space] pairs: the order is the flattening's, and the metadata is written
        # with sorted keys.
        pairs = [[str(key), space_to_json(child)] for key, child in space.spaces.items()]
        return {"type": "Dict", "spaces": pairs}
    if isinstance(space, gym.spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(child) for child in space.spaces]}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "shape": [int(d) for d in space.shape],
            "dtype": np.dtype(space.dtype).name,
            "nvec": np.asarray(space.nvec).tolist(),
            "start": np.asarray(space.start).tolist(),
        }
    if isinstance(space, gym.spaces.MultiBinary):
        return {
            "type": "MultiBinary",
            "shape": [int(d) for d in space.shape],
            "dtype": np.dtype(space.dtype).name,
        }
    if isinstance(space, gym.spaces.Discrete):
        return {
            "type": "Discrete",
            "shape": [],
            "dtype": np.dtype(space.dtype).name,
            "n": int(space.n),
            "start": int(space.start),
        }
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "shape": [int(d) for d in space.shape],
            "dtype": np.dtype(space.dtype).name,
            "low": _json_array(np.asarray(space.low)),
            "high": _json_array(np.asarray(space.high)),
        }
    raise IncompatibleSpaceError(
        f"export supports Box, Discrete, MultiDiscrete, MultiBinary spaces and Dict/Tuple of "
        f"them, not {space}; "
        "serve this policy from the run directory instead"
    )


def space_from_json(data: Mapping[str, Any]) -> gym.Space:
    """Inverse of :func:`space_to_json`."""
    if data["type"] == "Dict":
        # Pairs keep the written key order (a plain dict would be sorted by gymnasium).
        return gym.spaces.Dict([(key, space_from_json(child)) for key, child in data["spaces"]])
    if data["type"] == "Tuple":
        return gym.spaces.Tuple([space_from_json(child) for child in data["spaces"]])
    dtype = np.dtype(data["dtype"])
    if data["type"] == "Discrete":
        return gym.spaces.Discrete(int(data["n"]), start=int(data["start"]))
    if data["type"] == "Box":
        return gym.spaces.Box(
            _from_json_array(data["low"], dtype),
            _from_json_array(data["high"], dtype),
            tuple(data["shape"]),
            dtype,
        )
    if data["type"] == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(
            np.asarray(data["nvec"], dtype), dtype=dtype, start=np.asarray(data["start"], dtype)
        )
    if data["type"] == "MultiBinary":
        shape = tuple(data["shape"])
        return gym.spaces.MultiBinary(list(shape) if len(shape) > 1 else shape[0])
    raise ValueError(f"unknown space type {data['type']!r} in export metadata")
