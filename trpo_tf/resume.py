"""``trpo-tf train --resume``: what may change, and where the run continues from.

Everything here reads ``RUN_DIR/config.yaml`` and the checkpoint names and writes
nothing, so a resume that cannot work stops before the run directory is touched.

A checkpoint holds the networks, optimizer, normalizers and sampler of one
configuration, and the iterations already in ``metrics.csv`` were trained with it.
A resumed run may therefore change only settings that say how long to train, how
to evaluate, track and checkpoint, and how fast to compute; everything that shapes
the model, the environment, the data or the update stays as the run was started.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from trpo_tf.checkpoint import EXPERIMENT_FILE, CheckpointManager, experiment_of
from trpo_tf.config.loader import load_experiment, to_dict
from trpo_tf.config.schema import ExperimentConfig
from trpo_tf.errors import ConfigError, RunDirError

RESUMABLE_KEYS = (
    "trainer.total_steps",
    "trainer.threads",
    "trainer.graph_optimizer",
    "trainer.jit_compile",
    "trainer.overlap_value_fit",
    "runner.workers",
    "runner.address",
    "runner.connect_timeout_s",
    "runner.auth_token_file",
    "eval",
    "tracking",
    "checkpoint",
)
"""Key paths (a section stands for every key below it) that ``--resume`` may change."""

_RESUMABLE_TEXT = ", ".join(key if "." in key else f"{key}.*" for key in RESUMABLE_KEYS)


def resume_checkpoint(run_dir: str | Path, config: ExperimentConfig) -> Path:
    """The checkpoint ``run_dir`` continues from with ``config`` (see :func:`resume_point`)."""
    return resume_point(run_dir, config)[0]


def resume_point(run_dir: str | Path, config: ExperimentConfig) -> tuple[Path, list[str]]:
    """Check that ``run_dir`` can continue with ``config``; the checkpoint to continue from.

    The checkpoint is the truth: ``config`` (the run's ``config.yaml`` plus any
    overrides) is compared with the experiment stored *in the checkpoint*, so an
    edited ``config.yaml`` is reported like a ``--set`` change.

    Args:
        run_dir: the run directory to resume.
        config: the config the resumed run would train with.

    Returns:
        The newest intact checkpoint in ``run_dir/checkpoints``, and one note per newer
        checkpoint that was skipped (damaged, foreign, or an unreadable name).

    Raises:
        RunDirError: ``run_dir`` has no ``config.yaml`` or no intact checkpoint.
        ConfigError: ``config`` changes a key outside :data:`RESUMABLE_KEYS`, or its
            ``trainer.total_steps`` is below what the run has already trained.
    """
    from trpo_tf.tracking.run_dir import run_id_of

    run_dir = Path(run_dir)
    check_run_to_resume(run_dir)
    manager = CheckpointManager(run_dir / "checkpoints", config.checkpoint.keep)
    latest, skipped = manager.newest_intact(run_id_of(run_dir))
    if latest is None:
        why = f" ({'; '.join(skipped)})" if skipped else ""
        raise RunDirError(
            f"cannot resume: {run_dir} has no intact checkpoint{why}, so there is nothing to "
            f"continue; remove {run_dir} and train again, or train into another --run-dir"
        )
    saved_file = latest / EXPERIMENT_FILE
    if not experiment_of(latest).strip():  # written without its experiment (tests)
        saved_file = run_dir / "config.yaml"
    check_resume_config(load_experiment(saved_file), config, saved_file)
    check_resume_budget(config, CheckpointManager.iteration_of(latest), run_dir)
    return latest, skipped


def check_run_to_resume(run_dir: Path) -> None:
    """Raise :class:`RunDirError` unless ``run_dir`` holds a run (its ``config.yaml``).

    The parent of ``train --seeds`` runs is not one: the message names its seeds' runs.
    """
    if (run_dir / "config.yaml").is_file():
        return
    seeds = sorted(
        (p for p in run_dir.glob("seed_*") if (p / "config.yaml").is_file()),
        key=lambda p: (len(p.name), p.name),
    )
    if seeds:
        raise RunDirError(
            f"cannot resume: {run_dir} holds the runs of several seeds "
            f"({', '.join(p.name for p in seeds)}); resume each one on its own, e.g. "
            f"trpo-tf train --resume {seeds[0]}"
        )
    raise RunDirError(f"cannot resume: {run_dir} has no config.yaml (not a run directory)")


def is_resumable(path: str) -> bool:
    """Whether the key ``path`` (``trainer.max_kl``) may differ on ``--resume``."""
    return any(path == key or path.startswith(key + ".") for key in RESUMABLE_KEYS)


def differences(
    saved: ExperimentConfig, requested: ExperimentConfig
) -> Iterator[tuple[str, Any, Any]]:
    """``(key path, saved value, requested value)`` of every key that differs, in schema order.

    Mappings (``env.kwargs``, ``tracking.plugins``) are compared key by key; a key
    missing on one side has the value ``None`` there. Lists are compared whole.
    """
    yield from _diff(to_dict(saved), to_dict(requested), "")


def check_resume_config(
    saved: ExperimentConfig, requested: ExperimentConfig, saved_file: str | Path
) -> None:
    """Raise unless ``requested`` differs from the run's ``saved`` config only in resumable keys.

    Args:
        saved: the run's own config (``RUN_DIR/config.yaml``).
        requested: the config the resumed run would train with.
        saved_file: where ``saved`` was read from, quoted in the message.

    Raises:
        ConfigError: the first key outside :data:`RESUMABLE_KEYS` that differs, with
            the run's value and the requested one.
    """
    for path, old, new in differences(saved, requested):
        if not is_resumable(path):
            raise ConfigError(
                f"cannot change {path} on --resume ({_show(old)} in {saved_file}, "
                f"requested {_show(new)} by --set or an edited config.yaml); start a new "
                f"run instead, or resume without changing it (only {_RESUMABLE_TEXT} may change)"
            )


def check_resume_budget(config: ExperimentConfig, done_iterations: int, run_dir: Path) -> None:
    """Raise when ``trainer.total_steps`` is below what the run has already trained.

    Args:
        config: the config the resumed run would train with.
        done_iterations: the iteration of the checkpoint it continues from.
        run_dir: the run directory, quoted in the message.

    Raises:
        ConfigError: ``total_steps`` rounds down to fewer iterations than ``done_iterations``.
    """
    per_iteration = config.trainer.steps_per_iteration
    planned = config.trainer.total_steps // per_iteration
    if planned < done_iterations:
        done_steps = done_iterations * per_iteration
        raise ConfigError(
            f"trainer.total_steps {config.trainer.total_steps} is below the {done_steps} env "
            f"steps {run_dir} has already trained ({done_iterations} iterations of "
            f"trainer.steps_per_iteration {per_iteration}); set trainer.total_steps to at "
            f"least {done_steps}, or leave it out to finish the run's own budget"
        )


def _diff(saved: Any, requested: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    if isinstance(saved, Mapping) and isinstance(requested, Mapping):
        for key in [*saved, *(k for k in requested if k not in saved)]:
            child = f"{path}.{key}" if path else str(key)
            yield from _diff(saved.get(key), requested.get(key), child)
    elif saved != requested:
        yield path, saved, requested


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else str(value)
