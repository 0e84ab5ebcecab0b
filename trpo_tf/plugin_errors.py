"""One line for an exception raised inside plug-in code, naming the plug-in.

Whatever a plug-in raises (other than a :class:`~trpo_tf.errors.TrpoTfError`, whose
message its author wrote for users) becomes a :class:`~trpo_tf.errors.PluginError`
that names the plug-in, its package and entry point, the call that failed and the
exception's message::

    policy.distribution: distribution 'my_head' (package trpo-tf-my-head 0.1.0, entry
    point trpo_tf_my_head:make_my_head) raised in params(net_out): ValueError: ...

With ``TRPO_TF_DEBUG=1`` in the environment (what ``trpo-tf train --debug`` sets) the
full traceback follows that line.

The plug-ins that :mod:`trpo_tf.config.build` builds are guarded here, so that this
holds during training too, not only in the pre-check (:mod:`trpo_tf.plugin_checks`):
the head's methods are wrapped on the instance (:func:`guard_head`; its class, its
``tf.Module`` variables and its checkpoint layout stay as they are) and the estimator
is wrapped in a :class:`GuardedEstimator` that also checks what each call returns.

This module must not import TensorFlow.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from trpo_tf import registry
from trpo_tf.config.contracts import describe_plugin
from trpo_tf.errors import ConfigError, PluginError, TrpoTfError, one_line
from trpo_tf.interfaces import AdvantageInputs, AdvantageOutputs

DEBUG_VARIABLE = "TRPO_TF_DEBUG"
"""``TRPO_TF_DEBUG=1``: a plug-in's error line is followed by its full traceback."""

HEAD_DIAGNOSTIC_COLUMNS = ("policy_std",)
"""The ``metrics.csv`` columns a head's ``diagnostics`` may fill: the file rejects
unknown names, and every other column belongs to the trainer or the training loop."""

DISTRIBUTION_KEY = "policy.distribution"
ESTIMATOR_KEY = "advantage.estimator"

# The head's methods that trpo_tf calls, and how a message names each call.
HEAD_CALLS = {
    "params": "params(net_out)",
    "distribution": "distribution(params)",
    "mode": "mode(params)",
    "diagnostics": "diagnostics(params)",
    "to_env_action": "to_env_action(actions)",
    "to_env_action_graph": "to_env_action_graph(actions)",
    "numpy_sampler": "numpy_sampler()",
}

_FALSE = ("", "0", "false", "no", "off")


def debug_enabled() -> bool:
    """Whether ``TRPO_TF_DEBUG`` asks for tracebacks (set and not 0/false/no/off)."""
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() not in _FALSE


def plugin_raised(
    key: str, group: str, name: str, call: str, error: BaseException, hint: str = ""
) -> PluginError:
    """The error for an exception ``error`` that plug-in code raised in ``call``.

    Args:
        key: the config key that selected the plug-in (``policy.distribution``).
        group: its entry-point group.
        name: its name in that group.
        call: what trpo_tf called, e.g. ``"params(net_out)"``.
        error: what it raised.
        hint: what to do about it (optional).

    Returns:
        A :class:`PluginError` of one line, followed by ``error``'s traceback when
        :func:`debug_enabled`. Raise it ``from error``.
    """
    shown = one_line(error)
    if type(error).__name__ == "OperatorNotAllowedInGraphError":
        shown = shown.split(". ")[0] + "."  # the rest advises decorators that do not apply
    message = f"{key}: {describe_plugin(group, name)} raised in {call}: {shown}"
    hint = hint or _hint_for(error)
    if hint:
        message += f"; {hint}"
    if not debug_enabled():
        return PluginError(f"{message} (--debug or TRPO_TF_DEBUG=1 shows the traceback)")
    trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return PluginError(f"{message}\n{trace.rstrip()}")


def _hint_for(error: BaseException) -> str:
    if type(error).__name__ == "OperatorNotAllowedInGraphError":
        return (
            "trpo_tf traces plug-in code without autograph: use tf.where/tf.cond, not Python "
            "if/for/bool() on tensors"
        )
    return ""


def plugin_broke(key: str, group: str, name: str, contract: str, detail: str) -> PluginError:
    """The one-line error for a plug-in whose result breaks its ``contract``.

    ``contract`` names the protocol (``DistributionHead``), ``detail`` says what was
    returned and what was expected.
    """
    return PluginError(
        f"{key}: {describe_plugin(group, name)} breaks the {contract} contract: {detail}"
    )


def guarded_call(
    key: str, group: str, name: str, call: str, function: Callable[..., Any], *args: Any, **kw: Any
) -> Any:
    """``function(*args, **kw)``, with an exception from it turned into :func:`plugin_raised`.

    A :class:`~trpo_tf.errors.TrpoTfError` (a plug-in's own user-facing error) and
    anything that is not an ``Exception`` (``KeyboardInterrupt``) pass unchanged.
    """
    try:
        return function(*args, **kw)
    except TrpoTfError:
        raise
    except Exception as error:  # noqa: BLE001 - any failure inside the plug-in is named
        raise plugin_raised(key, group, name, call, error) from error


# -- distribution heads --------------------------------------------------------------------


def allowed_diagnostics() -> list[str]:
    """The diagnostics keys ``metrics.csv`` takes from a head."""
    from trpo_tf.tracking.run_dir import METRIC_COLUMNS

    return [column for column in HEAD_DIAGNOSTIC_COLUMNS if column in METRIC_COLUMNS]


def check_diagnostics_keys(diagnostics: Any, name: str) -> None:
    """``diagnostics(params)`` returned a mapping whose keys ``metrics.csv`` takes.

    Raises:
        PluginError: naming the head, its package and the keys that are not allowed.
    """
    group = registry.DISTRIBUTIONS
    if not isinstance(diagnostics, Mapping):
        raise plugin_broke(
            DISTRIBUTION_KEY,
            group,
            name,
            "DistributionHead",
            f"diagnostics(params) returned {type(diagnostics).__name__}, expected a mapping "
            "{name: scalar tensor} ({} for none)",
        )
    allowed = allowed_diagnostics()
    unknown = [key for key in diagnostics if key not in allowed]
    if unknown:
        raise plugin_broke(
            DISTRIBUTION_KEY,
            group,
            name,
            "DistributionHead",
            f"diagnostics(params) returned the key(s) {', '.join(repr(k) for k in unknown)}, "
            f"which are not metrics.csv columns a head may fill (allowed: {', '.join(allowed)}); "
            "drop them (return {} if nothing fits)",
        )


def _guard_method(name: str, method: str, call: str, bound: Callable[..., Any]) -> Any:
    group = registry.DISTRIBUTIONS

    def guarded(*args: Any, **kwargs: Any) -> Any:
        result = guarded_call(DISTRIBUTION_KEY, group, name, call, bound, *args, **kwargs)
        if method == "diagnostics":
            check_diagnostics_keys(result, name)
        return result

    guarded.__name__ = getattr(bound, "__name__", method)
    guarded.__doc__ = getattr(bound, "__doc__", None)
    guarded.__wrapped__ = bound  # type: ignore[attr-defined]
    guarded.plugin_guard = True  # type: ignore[attr-defined]
    return guarded


def guard_head(head: Any, name: str) -> Any:
    """Wraps the head's methods on the instance so that what they raise names the plug-in.

    Only the instance's attributes change: ``type(head)`` (what the exporter and the
    runners inspect), its variables and its checkpoint are untouched, and the numpy
    sampler it returns is the head's own (rollout workers pickle it by value).
    ``diagnostics`` also has its keys checked at every call.

    Args:
        head: what the distribution factory returned (already checked by
            :func:`trpo_tf.config.contracts.check_head`).
        name: the plug-in name (``policy.distribution`` resolved from ``auto``).

    Returns:
        ``head`` itself.
    """
    with_name = getattr(head, "__dict__", None)
    if with_name is not None:  # read by the numpy actor to name the head in its errors
        with_name.setdefault("plugin_name", name)
    for method, call in HEAD_CALLS.items():
        bound = getattr(head, method, None)
        if not callable(bound) or getattr(bound, "plugin_guard", False):
            continue
        try:
            setattr(head, method, _guard_method(name, method, call, bound))
        except (AttributeError, TypeError):  # a read-only attribute: left as it is
            continue
    return head


# -- advantage estimators ------------------------------------------------------------------

_OUTPUT_FIELDS = ("advantages", "value_targets")


def check_estimator_outputs(outputs: Any, inputs: AdvantageInputs, name: str) -> AdvantageOutputs:
    """What an estimator returned is an :class:`AdvantageOutputs` of ``[T, n_envs]`` numbers.

    Raises:
        PluginError: naming the estimator, its package, what it returned and what was
            expected.
    """

    def broke(detail: str) -> PluginError:
        return plugin_broke(ESTIMATOR_KEY, registry.ADVANTAGES, name, "AdvantageEstimator", detail)

    if not isinstance(outputs, AdvantageOutputs):
        raise broke(
            f"estimator(inputs) returned {type(outputs).__name__}, expected "
            "trpo_tf.interfaces.AdvantageOutputs(advantages=..., value_targets=...)"
        )
    expected = tuple(np.shape(inputs.rewards))
    for field in _OUTPUT_FIELDS:
        value = getattr(outputs, field)
        try:
            array = np.asarray(value)
        except Exception as error:  # noqa: BLE001 - anything that is not array-like
            raise broke(
                f"estimator(inputs).{field} is {type(value).__name__}, not an array "
                f"({one_line(error)})"
            ) from error
        if array.shape != expected:
            raise broke(
                f"estimator(inputs).{field} has shape {array.shape}, expected {expected} = "
                "[T, n_envs], the shape of inputs.rewards (time-major, one column per env)"
            )
        if array.dtype.kind not in "iuf":
            raise broke(
                f"estimator(inputs).{field} has dtype {array.dtype}, expected float32 numbers"
            )
    return outputs


class GuardedEstimator:
    """An estimator whose exceptions and malformed outputs name the plug-in.

    Calls the plug-in's estimator, turns what it raises into one line
    (:func:`plugin_raised`) and checks each result with
    :func:`check_estimator_outputs`. Other attributes are the estimator's own.
    """

    def __init__(self, estimator: Callable[[AdvantageInputs], Any], name: str) -> None:
        self.estimator = estimator
        self.name = name

    def __call__(self, inputs: AdvantageInputs) -> AdvantageOutputs:
        outputs = guarded_call(
            ESTIMATOR_KEY,
            registry.ADVANTAGES,
            self.name,
            "estimator(inputs)",
            self.estimator,
            inputs,
        )
        return check_estimator_outputs(outputs, inputs, self.name)

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__") or attribute in ("estimator", "name"):
            raise AttributeError(attribute)
        return getattr(self.estimator, attribute)

    def __repr__(self) -> str:
        return f"GuardedEstimator({self.estimator!r}, {self.name!r})"


def factory_failed(
    error: Exception,
    group: str,
    name: str,
    key: str,
    kwargs_key: str,
    kwargs: Mapping[str, Any],
    call: str,
) -> TrpoTfError:
    """The one-line error for a plug-in factory that raised ``error``.

    A ``TypeError`` while config kwargs were passed is the kwargs' (a value of the
    wrong type): a :class:`ConfigError` naming ``kwargs_key``. Anything else is the
    plug-in's: a :class:`PluginError` naming it, its package and entry point.
    """
    if isinstance(error, TypeError) and kwargs:
        return ConfigError(
            f"{kwargs_key}: {describe_plugin(group, name)} rejected {dict(kwargs)}: "
            f"{one_line(error)}"
        )
    return plugin_raised(key, group, name, call, error)
