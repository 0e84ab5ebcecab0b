"""Trackers an experiment asks for, besides the always-on run directory."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trpo_tf import registry
from trpo_tf.config.contracts import check_kwargs, check_passed_keywords
from trpo_tf.config.loader import to_dict
from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.errors import ConfigError, TrpoTfError
from trpo_tf.interfaces import Tracker
from trpo_tf.tracking.safe import IsolatedTracker, describe_error, warn_disabled

# What trpo_tf passes every tracker factory, besides the plug-in's own kwargs.
PASSED = ("run_dir", "experiment")


def build_trackers(config: ExperimentConfig, run_dir: Path) -> list[Tracker]:
    """Trackers enabled by ``config.tracking``.

    Always a learning-curve PNG at the end; TensorBoard event files unless
    ``tracking.tensorboard: false``; a W&B run when ``tracking.wandb.enabled`` and
    its mode is not ``disabled``; then each tracker plug-in named in
    ``tracking.plugins`` (W&B and plug-ins last, so they finish after the local files
    exist; the plug-ins are built first, so that a broken one stops the run before
    anything else has started).

    Raises:
        ConfigError: a plug-in's keyword arguments are not a mapping or are rejected,
            or it returns something without ``log``/``finish``.
        PluginError: a plug-in factory that cannot take ``run_dir``/``experiment``.
        RegistryError: an unknown or broken tracker plug-in name.
    """
    from trpo_tf.tracking.plots import CurvePlotTracker

    # Plug-ins are built first: one that fails its contract raises before an event
    # file is open or a W&B run has started.
    plugins = [
        tracker
        for name, kwargs in config.tracking.plugins.items()
        if (tracker := plugin_tracker(name, kwargs, config, run_dir)) is not None
    ]
    trackers: list[Tracker] = []
    if config.tracking.tensorboard:
        from trpo_tf.tracking.tensorboard import TensorBoardTracker

        trackers.append(TensorBoardTracker(run_dir))
    trackers.append(CurvePlotTracker())
    wandb = config.tracking.wandb
    if wandb.enabled and wandb.mode != "disabled":
        from trpo_tf.tracking.wandb_tracker import WandbTracker

        trackers.append(WandbTracker(config, run_dir))
    return trackers + plugins


def check_trackers(config: ExperimentConfig) -> None:
    """Check ``tracking.plugins`` without building anything (before a run directory exists).

    Each name must be a registered tracker plug-in and its keyword arguments a
    mapping that the factory's signature accepts.

    Raises:
        ConfigError: keyword arguments that are not a mapping or that the factory's
            signature does not take.
        PluginError: a factory that cannot take ``run_dir``/``experiment``.
        RegistryError: an unknown or broken tracker plug-in name.
    """
    for name, kwargs in config.tracking.plugins.items():
        kwargs = _plugin_kwargs(name, kwargs)
        factory = registry.load(registry.TRACKERS, name)
        key = f"tracking.plugins.{name}"
        check_passed_keywords(factory, PASSED, key, registry.TRACKERS, name)
        check_kwargs(factory, kwargs, key, f"tracker '{name}'", reserved=PASSED)
        try:
            signature = inspect.signature(factory)
        except (TypeError, ValueError):  # no introspectable signature: checked when built
            continue
        try:
            signature.bind(run_dir=Path(), experiment={}, **kwargs)
        except TypeError as error:
            raise _rejected(name, kwargs, error) from error


def plugin_tracker(
    name: str, kwargs: Any, config: ExperimentConfig, run_dir: Path
) -> IsolatedTracker | None:
    """``factory(run_dir=..., experiment=<resolved experiment as plain data>, **kwargs)``.

    A factory that fails for a reason other than its arguments (a server down, say)
    warns once and the run continues without it, like any tracker failure.
    """
    key = f"tracking.plugins.{name}"
    kwargs = _plugin_kwargs(name, kwargs)
    factory = registry.load(registry.TRACKERS, name)
    check_passed_keywords(factory, PASSED, key, registry.TRACKERS, name)
    try:
        tracker = factory(run_dir=run_dir, experiment=to_dict(config), **kwargs)
    except TypeError as error:
        raise _rejected(name, kwargs, error) from error
    except TrpoTfError:
        raise
    except Exception as error:  # noqa: BLE001 - a tracker must never end a run
        warn_disabled(f"tracker '{name}'", describe_error(error))
        return None
    missing = [
        method for method in ("log", "finish") if not callable(getattr(tracker, method, None))
    ]
    if missing:
        raise ConfigError(
            f"{key}: tracker '{name}' returned {type(tracker).__name__} without "
            f"{', '.join(m + '()' for m in missing)}; a Tracker has log(row, step) and "
            "finish(summary, run_dir)"
        )
    return IsolatedTracker(name, tracker)


def _plugin_kwargs(name: str, kwargs: Any) -> Mapping[str, Any]:
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping):
        raise ConfigError(
            f"tracking.plugins.{name} must be a mapping of the tracker's keyword arguments "
            f"(or empty), got {kwargs!r}; write e.g. tracking.plugins: {{{name}: {{}}}}"
        )
    return kwargs


def _rejected(name: str, kwargs: Mapping[str, Any], error: TypeError) -> ConfigError:
    return ConfigError(
        f"tracking.plugins.{name}: tracker '{name}' rejected {dict(kwargs)}: {error}"
    )
