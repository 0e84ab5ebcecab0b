"""User-facing errors.

Every problem a user can fix (a bad config key, an unknown plug-in name, an action
space a distribution cannot handle, an environment emitting NaN) raises a subclass
of :class:`TrpoTfError` with a one-line message that says what is wrong and how to
fix it. The CLI prints that line and exits with status 2, without a traceback.
"""

from __future__ import annotations


class TrpoTfError(Exception):
    """Base class of errors caused by user input; the message is shown as-is."""


class ConfigError(TrpoTfError, ValueError):
    """An experiment config is invalid (unknown key, wrong type, out of range)."""


class RegistryError(TrpoTfError, LookupError):
    """A plug-in name is unknown, provided twice, or its package failed to load."""


class IncompatibleSpaceError(TrpoTfError, ValueError):
    """A distribution or estimator does not fit the environment's spaces."""


class PluginError(TrpoTfError, TypeError):
    """A plug-in's factory or the object it returns breaks its protocol."""


class NonFiniteEnvError(TrpoTfError, FloatingPointError):
    """An environment returned a NaN or infinite observation or reward."""


class NumericalError(TrpoTfError, FloatingPointError):
    """Training produced a NaN or infinity (advantages, value targets, θ or φ).

    Raised at the stage that produced it, naming the iteration, so that the run
    stops before it checkpoints or exports non-finite weights.
    """


class RunDirError(TrpoTfError, FileNotFoundError):
    """A run directory or exported policy is missing or incomplete."""


class OutputPathError(TrpoTfError, ValueError):
    """An output path the user named is unusable (a file, another run's data)."""


class TrpoTfWarning(UserWarning):
    """A warning for the user; its message is one line starting ``trpo-tf: warning:``."""
