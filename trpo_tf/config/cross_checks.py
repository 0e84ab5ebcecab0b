"""Rules between keys of an experiment, checked once every key has converted.

Each names every key involved and where it was set (:meth:`Converter.where`): the batch
shape (``trainer.steps_per_iteration`` against ``env.n_envs``, ``trainer.total_steps``
and ``value.minibatch_size``), the trust region's schedule, what training needs of
``env.kwargs``, and a rough memory need against the machine's.
"""

from __future__ import annotations

import os

from trpo_tf.config.convert import Converter
from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.config.schema_info import show
from trpo_tf.errors import ConfigError

TRAINING_RENDER_MODES = (None, "rgb_array")
"""``env.kwargs.render_mode`` values training accepts (``human`` opens a window per env
copy, and crashed without a display)."""


def check_cross_fields(config: ExperimentConfig, converter: Converter) -> None:
    check_env_kwargs(config, converter)
    check_batch(config, converter)
    check_kl_schedule(config, converter)
    check_memory(config, converter)


def check_kl_schedule(config: ExperimentConfig, converter: Converter) -> None:
    """``trainer.max_kl_final`` shrinks the trust region, never widens it."""
    final, start = config.trainer.max_kl_final, config.trainer.max_kl
    if final is not None and final > start:
        where = converter.where("trainer.max_kl_final", "trainer.max_kl")
        raise ConfigError(
            f"trainer.max_kl_final must be <= trainer.max_kl, got {final} > {start}{where}; "
            "lower trainer.max_kl_final, or set it to null for a constant trust region"
        )


def check_env_kwargs(config: ExperimentConfig, converter: Converter) -> None:
    """What training needs of ``env.kwargs``: no window to render into, one time limit."""
    kwargs = config.env.kwargs
    render_mode = kwargs.get("render_mode")
    if render_mode not in TRAINING_RENDER_MODES:
        raise ConfigError(
            f"env.kwargs.render_mode must be 'rgb_array' or null for training, got "
            f"{show(render_mode)}{converter.where('env.kwargs.render_mode')}; remove it: "
            "training never renders (trpo-tf eval --video records rgb_array frames itself)"
        )
    if "max_episode_steps" in kwargs and config.env.max_episode_steps is not None:
        where = converter.where("env.kwargs.max_episode_steps", "env.max_episode_steps")
        raise ConfigError(
            f"env.kwargs.max_episode_steps and env.max_episode_steps are both set{where}; "
            "keep env.max_episode_steps only"
        )


def check_batch(config: ExperimentConfig, converter: Converter) -> None:
    steps = config.trainer.steps_per_iteration
    n_envs = config.env.n_envs
    if steps % n_envs:
        lower = steps // n_envs * n_envs
        upper = lower + n_envs
        nearest = upper if lower == 0 or upper - steps < steps - lower else lower
        where = converter.where("trainer.steps_per_iteration", "env.n_envs")
        raise ConfigError(
            f"trainer.steps_per_iteration must be divisible by env.n_envs, got {steps} and "
            f"{n_envs}{where}; set trainer.steps_per_iteration to {nearest} "
            f"(the nearest multiple of {n_envs}) or change env.n_envs"
        )
    total = config.trainer.total_steps
    if total < steps:
        where = converter.where("trainer.total_steps", "trainer.steps_per_iteration")
        raise ConfigError(
            f"trainer.total_steps must be >= trainer.steps_per_iteration (training runs whole "
            f"iterations), got {total} < {steps}{where}; raise trainer.total_steps to at "
            f"least {steps} or lower trainer.steps_per_iteration"
        )
    minibatch = config.value.minibatch_size
    if minibatch > steps:
        where = converter.where("value.minibatch_size", "trainer.steps_per_iteration")
        raise ConfigError(
            f"value.minibatch_size must be <= trainer.steps_per_iteration, got {minibatch} > "
            f"{steps}{where}; lower value.minibatch_size or raise trainer.steps_per_iteration"
        )


# A rough, low estimate of what training holds in float32: each network parameter about
# eight times (weights, gradient, conjugate-gradient vectors, the old policy, the line
# search's candidate, Adam's moments), and per sample of an iteration the activations
# of every hidden unit twice (forward pass and its gradient) plus the sample itself.
PARAMETER_COPIES = 8
ACTIVATION_COPIES = 2
FLOATS_PER_SAMPLE = 16


def mlp_parameters(hidden: tuple[int, ...]) -> int:
    """Weights and biases of an MLP with these hidden widths and 1-wide input and output."""
    widths = (1, *hidden, 1)
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=False))


def training_memory_bytes(config: ExperimentConfig) -> int:
    """A low estimate of the memory a training run needs (the env's own is not counted)."""
    parameters = mlp_parameters(config.policy.hidden) + mlp_parameters(config.value.hidden)
    units = sum(config.policy.hidden) + sum(config.value.hidden)
    per_sample = ACTIVATION_COPIES * units + FLOATS_PER_SAMPLE
    floats = PARAMETER_COPIES * parameters + config.trainer.steps_per_iteration * per_sample
    return 4 * floats


def machine_memory_bytes() -> int | None:
    """Physical memory of this machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(config: ExperimentConfig, converter: Converter) -> None:
    """Networks and batch whose rough memory need exceeds the machine's are refused."""
    available = machine_memory_bytes()
    need = training_memory_bytes(config)
    if available is None or need <= available:
        return
    parameters = mlp_parameters(config.policy.hidden) + mlp_parameters(config.value.hidden)
    where = converter.where("policy.hidden", "value.hidden", "trainer.steps_per_iteration")
    raise ConfigError(
        f"policy.hidden, value.hidden and trainer.steps_per_iteration need roughly "
        f"{need / 2**30:,.1f} GiB to train ({parameters:,d} network parameters, "
        f"{config.trainer.steps_per_iteration:,d} samples per iteration), more than this "
        f"machine's {available / 2**30:,.1f} GiB of memory{where}; use narrower or fewer "
        "hidden layers or fewer trainer.steps_per_iteration"
    )
