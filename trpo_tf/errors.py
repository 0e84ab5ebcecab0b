"""User-facing errors.

Every problem a user can fix (a bad config key, an unknown plug-in name, an action
space a distribution cannot handle, an environment emitting NaN) raises a subclass
of :class:`TrpoTfError` with a one-line message that says what is wrong and how to
fix it. The CLI prints that line and exits with status 2, without a traceback.
"""

from __future__ import annotations


def one_line(error: BaseException, limit: int = 300) -> str:
    """``"Type: message"`` on one line (whitespace collapsed), at most ``limit`` characters."""
    text = " ".join(str(error).split())
    line = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def first_line(error: BaseException, limit: int | None = None) -> str:
    """``"Type: the message's first line"``, that line cut at ``limit`` characters."""
    line = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {line[:limit]}"


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


class NormalizerOverflowError(NonFiniteEnvError):
    """A normalizer's running statistics overflowed on an environment's values."""


class EnvRuntimeError(TrpoTfError, RuntimeError):
    """An environment raised in ``step``/``reset``, or returned a step that is not valid.

    Also raised when an environment keeps failing inside asynchronous rollout workers.
    """


class ExportError(TrpoTfError, RuntimeError):
    """An export could not be written or failed its numerical check."""


class RolloutWorkerError(TrpoTfError, RuntimeError):
    """Rollout worker processes kept dying (``runner.kind: async`` or ``ray``)."""


class RayConnectionError(TrpoTfError, ConnectionError):
    """``runner.address`` names a Ray cluster that cannot be reached or joined in time."""


class RunDirError(TrpoTfError, FileNotFoundError):
    """A run directory or exported policy is missing or incomplete."""


class OutputPathError(TrpoTfError, ValueError):
    """An output path the user named is unusable (a file, another run's data)."""


class TrpoTfWarning(UserWarning):
    """A warning for the user; its message is one line starting ``trpo-tf: warning:``."""


class StorageError(TrpoTfError, OSError):
    """A write failed (disk full, read-only filesystem, no permission, quota).

    The CLI exits with status 74 (``EX_IOERR``) for it; what was
    written before (the previous checkpoint) is intact.
    """

    exit_status = 74


class RunInUseError(RunDirError):
    """Another live process holds the run directory."""
