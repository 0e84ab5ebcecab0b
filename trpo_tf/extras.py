"""Optional dependencies: which extra of ``trpo_tf`` brings each, checked before a run.

A missing one is one :class:`MissingExtraError` line naming the extra to install,
raised before TensorFlow loads and before any episode runs. Looking a package up
(``importlib.util.find_spec``) does not import it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from trpo_tf.errors import ConfigError


class MissingExtraError(ConfigError):
    """An optional dependency the command needs is not installed."""


@dataclass(frozen=True)
class Extra:
    """One ``pip install "trpo_tf[NAME]"`` extra: what it is for and a module it provides."""

    name: str
    what: str
    module: str


EXTRAS = {
    "mujoco": Extra("mujoco", "MuJoCo", "mujoco"),
    "box2d": Extra("box2d", "Box2D", "Box2D"),
    "ray": Extra("ray", "Ray", "ray"),
    "wandb": Extra("wandb", "Weights & Biases", "wandb"),
    "video": Extra("video", "a video renderer (pygame)", "pygame"),
    "tensorboard": Extra("tensorboard", "TensorBoard", "tensorboard"),
    "tune": Extra("tune", "Optuna", "optuna"),
}

# gymnasium's env modules that need a package gymnasium leaves to an extra.
_ENV_EXTRAS = {
    "gymnasium.envs.mujoco": "mujoco",
    "gymnasium.envs.box2d": "box2d",
}
# To render rgb_array frames (``eval --video``), besides what the env needs to run.
_RENDER_EXTRAS = {
    "gymnasium.envs.classic_control": "video",
    "gymnasium.envs.box2d": "box2d",
    "gymnasium.envs.toy_text": "video",
}


def install_command(extra: str) -> str:
    return f'pip install "trpo_tf[{extra}]"'


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(extra: str, needed_for: str) -> None:
    """Raise :class:`MissingExtraError` unless ``extra``'s module is installed."""
    info = EXTRAS[extra]
    if not installed(info.module):
        raise MissingExtraError(
            f"{needed_for} needs {info.what}, which is not installed: {install_command(extra)}"
        )


def _gymnasium_module(env_id: str) -> str | None:
    """The module of a gymnasium id's entry point (None: not a gymnasium id, or a callable)."""
    import gymnasium as gym

    if env_id not in gym.registry:
        return None
    entry_point = gym.spec(env_id).entry_point
    return entry_point.split(":", 1)[0] if isinstance(entry_point, str) else None


def _extra_of(module: str | None, table: dict[str, str]) -> str | None:
    if module is None:
        return None
    for prefix, extra in table.items():
        if module == prefix or module.startswith(prefix + "."):
            return extra
    return None


def env_extra(env_id: str) -> str | None:
    """The extra a gymnasium id needs to run (``HalfCheetah-v5`` -> ``mujoco``), or None."""
    return _extra_of(_gymnasium_module(env_id), _ENV_EXTRAS)


def check_env(env_id: str) -> None:
    """``env.id`` runs here, as far as its extra goes."""
    extra = env_extra(env_id)
    if extra is not None:
        require(extra, f"env.id {env_id!r}")


def check_experiment(config) -> None:
    """Every optional package ``config`` (an ExperimentConfig) needs is installed."""
    check_env(config.env.id)
    if config.runner.kind == "ray":
        require("ray", "runner.kind: ray")
    wandb = config.tracking.wandb
    if wandb.enabled and wandb.mode != "disabled":
        require("wandb", "tracking.wandb.enabled (--wandb)")


def check_video(env_id: str) -> None:
    """``eval --video`` can render ``env_id``'s frames and write them, as far as packages go."""
    check_env(env_id)
    module = _gymnasium_module(env_id)
    extra = _extra_of(module, _RENDER_EXTRAS)
    if extra is not None:
        require(extra, f"--video of {env_id!r}")
    if not (installed("moviepy") or installed("PIL")):
        raise MissingExtraError(
            "--video needs moviepy (MP4) or Pillow (GIF) to write frames: "
            + install_command("video")
        )
