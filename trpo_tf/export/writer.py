"""Writing exports: the SavedModel with its metadata, and an export of a run.

The metadata is :mod:`trpo_tf.export.metadata`'s; TFLite conversion and its check
are :mod:`trpo_tf.export.tflite`'s.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import tensorflow as tf

from trpo_tf import atomic
from trpo_tf.errors import ExportError
from trpo_tf.export.metadata import METADATA_FILE, export_metadata
from trpo_tf.export.module import ExportedAgent
from trpo_tf.export.tflite import TFLITE_FILE, export_tflite

FORMATS = ("savedmodel", "tflite")


def export_savedmodel(
    agent: Any, config: Any, env_spec: Any, out_dir: str | Path, policy_label: str = "final"
) -> Path:
    """Write ``agent`` as a TensorFlow-only SavedModel plus ``metadata.json``.

    Args:
        agent: a :class:`~trpo_tf.agent.Agent` (policy, value network, normalizer).
        config: the run's :class:`~trpo_tf.config.ExperimentConfig`.
        env_spec: :class:`~trpo_tf.envs.EnvSpec` of the training environment.
        out_dir: the SavedModel directory (created; an existing export is replaced).
        policy_label: which of the run's policies this is (metadata ``policy``).

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.

    Raises:
        IncompatibleSpaceError: the observation or action space cannot be exported, or
            the head maps actions in Python only (no ``to_env_action_graph``).
    """
    out_dir = Path(out_dir)
    metadata = export_metadata(config, env_spec, agent, policy_label)
    # The metadata lists the env_* inputs exactly when the env's space is servable.
    servable = "env_observation_inputs" in metadata
    env_space = env_spec.env_observation_space if servable else None
    normalizer = agent.observation_normalizer
    module = ExportedAgent(
        agent.policy,
        agent.value_network,
        observation_dim=int(env_spec.observation_dim),
        observation_mean=normalizer.stats.mean if normalizer.enabled else None,
        observation_var=normalizer.stats.var if normalizer.enabled else None,
        observation_clip=normalizer.clip,
        epsilon=normalizer.epsilon,
        action_space=env_spec.action_space,
        metadata_json=json.dumps(metadata, sort_keys=True),
        env_observation_space=env_space,
    )
    names = ["action", "sample", "value", "metadata"]
    if module.stateful:
        names.append("initial_state")
    if env_space is not None:
        names += ["env_action", "env_sample", "env_value"]
    signatures = {name: getattr(module, name).get_concrete_function() for name in names}
    signatures["serving_default"] = signatures["action"]
    text = json.dumps(metadata, indent=2, sort_keys=True) + "\n"

    def fill(directory: Path) -> None:
        tf.saved_model.save(module, str(directory), signatures=signatures)
        (directory / METADATA_FILE).write_text(text)

    # Built beside out_dir and swapped in whole: an existing export (and any TFLite
    # file converted from it) is replaced, never merged into, and a kill mid-export
    # leaves the previous one.
    return atomic.build_dir(out_dir, fill, "export")


def export_run(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    format: str = "savedmodel",
    force: bool = False,
) -> Path:
    """Export a finished run's final policy (what ``trpo-tf export`` runs).

    Args:
        run_dir: a run directory with ``config.yaml`` and ``policy/``.
        out_dir: where the SavedModel goes (default ``RUN_DIR/export``, which a
            re-export replaces).
        format: ``savedmodel``, or ``tflite`` to also write ``OUT/policy.tflite``.
        force: overwrite an existing non-empty ``out_dir`` other than
            ``RUN_DIR/export`` (never a run directory).

    Returns:
        The SavedModel directory, or the ``.tflite`` file for ``format="tflite"``.

    Raises:
        RunDirError: ``run_dir`` is not a finished run.
        ExportError: ``format`` is unknown or the TFLite check failed.
        OutputPathError: ``out_dir`` is a file, a run directory, or (without
            ``force``) another non-empty directory.
    """
    from trpo_tf.envs import describe, make_env_fn
    from trpo_tf.outputs import check_export_dir, is_run_dir
    from trpo_tf.run.lock import locked
    from trpo_tf.run_loading import load_run

    if format not in FORMATS:
        raise ExportError(f"export format must be one of {', '.join(FORMATS)}, got {format!r}")
    run_dir = Path(run_dir)
    default = run_dir / "export"
    out = check_export_dir(out_dir if out_dir else default, default, force)
    # The run's lock: no export of a run that a live process is still writing.
    inside = out.resolve().is_relative_to(run_dir.resolve())
    lock = locked(run_dir, "trpo-tf export", writes_there=inside) if is_run_dir(run_dir) else None
    with lock or contextlib.nullcontext():
        config, agent = load_run(run_dir)
        spec = describe(
            config.env.id,
            make_env_fn(config.env.id, config.env.kwargs, config.env.max_episode_steps),
        )
        out = export_savedmodel(agent, config, spec, out)
        if format == "tflite":
            return export_tflite(out, out / TFLITE_FILE)
    return out
