"""Checks of what plug-in factories take and return, made before a run starts.

A plug-in that breaks its protocol (``trpo_tf.interfaces``) should fail when the
agent is built, with one line naming the plug-in, its package and what to change,
not with a traceback from inside a traced TensorFlow function hours later.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from trpo_tf import registry
from trpo_tf.errors import ConfigError, PluginError
from trpo_tf.interfaces import AdvantageOutputs, DistributionHead


def _protocol_members(protocol: type) -> tuple[list[str], list[str]]:
    """``(attributes, methods)`` a protocol declares (its annotations, its callables)."""
    attributes = list(getattr(protocol, "__annotations__", {}))
    methods: list[str] = []
    for name, member in vars(protocol).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            attributes.append(name)
        elif callable(member):
            methods.append(name)
    return attributes, methods


HEAD_ATTRIBUTES, HEAD_METHODS = _protocol_members(DistributionHead)


def describe_plugin(group: str, name: str) -> str:
    """``"distribution 'x' (package p 1.0, entry point m:f)"``; the package when known."""
    what = f"{registry.kind(group)} '{name}'"
    try:
        entry = registry.info(group, name)
    except Exception:  # noqa: BLE001 - only decorates a message
        return what
    package = "" if entry.package is None else f"package {entry.provider}, "
    return f"{what} ({package}entry point {entry.value})"


def check_head(head: Any, name: str) -> None:
    """``head`` is a ``tf.Module`` with every member of the DistributionHead protocol.

    Optional members (``to_env_action_graph``, ``numpy_sampler``, ``num_features``)
    are not required.

    Raises:
        PluginError: naming the distribution, its package, the missing members and
            whether it must become a ``tf.Module``.
    """
    import tensorflow as tf  # here: the keyword checks serve TensorFlow-free callers too

    missing = [a for a in HEAD_ATTRIBUTES if not hasattr(head, a)]
    missing += [f"{m}()" for m in HEAD_METHODS if not callable(getattr(head, m, None))]
    is_module = isinstance(head, tf.Module)
    if not missing and is_module:
        return
    problems = []
    fixes = []
    if missing:
        problems.append(f"lacks {', '.join(missing)} of the DistributionHead protocol")
        fixes.append("add them (see trpo_tf.interfaces.DistributionHead)")
    if not is_module:
        problems.append("is not a tf.Module")
        fixes.append(
            "make it a tf.Module (subclass tf.Module and call super().__init__()) so its "
            "variables are trained and checkpointed"
        )
    raise PluginError(
        f"policy.distribution: {describe_plugin(registry.DISTRIBUTIONS, name)} returned "
        f"{type(head).__name__}, which {' and '.join(problems)}; {' and '.join(fixes)}"
    )


def check_estimator(estimator: Any, name: str) -> None:
    """The estimator factory's result is callable as ``estimator(inputs)``.

    Raises:
        PluginError: naming the estimator, its package and the expected call.
    """
    if callable(estimator):
        return
    raise PluginError(
        f"advantage.estimator: {describe_plugin(registry.ADVANTAGES, name)} returned "
        f"{type(estimator).__name__}, which is not callable; an AdvantageEstimator is "
        "called as estimator(inputs: AdvantageInputs) -> AdvantageOutputs"
    )


def check_advantage_outputs(outputs: Any, name: str) -> AdvantageOutputs:
    """What an estimator returned is an :class:`AdvantageOutputs`.

    Raises:
        PluginError: naming the estimator, what it returned and the expected type.
    """
    if isinstance(outputs, AdvantageOutputs):
        return outputs
    raise PluginError(
        f"advantage.estimator: estimator '{name}' returned {type(outputs).__name__}, "
        "expected trpo_tf.interfaces.AdvantageOutputs(advantages=..., value_targets=...)"
    )


def keyword_names(factory: Callable[..., Any], skip_leading: int = 0) -> list[str] | None:
    """The names ``factory`` takes as keywords, after its first ``skip_leading`` parameters.

    None when any keyword goes: the factory takes ``**kwargs`` or has no signature
    to read (then the call itself decides).
    """
    try:
        parameters = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in parameters[skip_leading:] if p.kind in named]


def unaccepted_keywords(factory: Callable[..., Any], passed: Sequence[str]) -> list[str]:
    """Those of ``passed`` that ``factory``'s signature cannot take as keywords.

    Empty when the factory takes ``**kwargs`` or has no signature to read.
    """
    accepted = keyword_names(factory)
    if accepted is None:
        return []
    return [name for name in passed if name not in accepted]


def check_passed_keywords(
    factory: Callable[..., Any], passed: Sequence[str], key: str, group: str, name: str
) -> None:
    """The factory accepts the keywords trpo_tf itself passes it (not config kwargs).

    Args:
        factory: the plug-in's factory.
        passed: keywords the builder always passes, e.g. ``("gamma", "lam")``.
        key: the config key path for the message, e.g. ``advantage.estimator``.
        group: the entry-point group.
        name: the plug-in name.

    Raises:
        PluginError: naming the plug-in, its entry point and the keywords to add.
    """
    missing = unaccepted_keywords(factory, passed)
    if not missing:
        return
    function = getattr(factory, "__name__", "its factory")
    raise PluginError(
        f"{key}: {describe_plugin(group, name)}: the factory must accept the keyword(s) "
        f"{', '.join(passed)}, which trpo_tf passes to every {registry.kind(group)}; add "
        f"{', '.join(missing)} to {function}'s signature"
    )


def check_kwargs(
    factory: Any,
    kwargs: Mapping[str, Any],
    key: str,
    what: str,
    positional: int = 0,
    reserved: tuple[str, ...] = (),
    also_accepted: Sequence[str] = (),
) -> None:
    """Unknown keyword arguments of a plug-in factory as a one-line error.

    Used for ``policy.distribution_kwargs``, ``advantage.kwargs``, ``env.kwargs`` and
    ``tracking.plugins.NAME``: wherever the factory's signature can be read, a key it
    does not take is named with the closest one it does ("did you mean").

    Args:
        factory: the plug-in's callable (a function or a class).
        kwargs: the keyword arguments from the config.
        key: their config key path, e.g. ``policy.distribution_kwargs``.
        what: the plug-in for the message, e.g. ``distribution 'diag_gaussian'``.
        positional: leading arguments the builder passes by position (not offered).
        reserved: keywords the builder passes itself (not offered).
        also_accepted: keywords taken besides the factory's own (``gymnasium.make``'s
            ``max_episode_steps`` for a gymnasium id).

    Raises:
        ConfigError: a key the factory does not accept (and it takes no ``**kwargs``),
            naming the key path and the closest accepted keyword.
    """
    names = keyword_names(factory, skip_leading=positional)
    if names is None:  # **kwargs, or no signature to read: let the call decide
        return
    accepted = [name for name in [*names, *also_accepted] if name not in reserved]
    accepted = list(dict.fromkeys(accepted))
    for name in kwargs:
        if name in accepted or name in reserved:
            continue
        close = difflib.get_close_matches(str(name), accepted, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        shown = name if len(str(name)) <= 40 else f"{str(name)[:37]}..."
        raise ConfigError(
            f"unknown key '{key}.{shown}': {what} takes no keyword '{shown}'"
            f"{'; ' + hint if hint else ' '}(it accepts {', '.join(accepted) or 'no keywords'})"
        )
