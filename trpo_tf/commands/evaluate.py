"""``trpo-tf eval`` and ``trpo-tf export``: evaluate a run or an export; export a run.

``eval --video`` checks that the env can render before TensorFlow loads or any
episode runs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from trpo_tf.commands.train import import_tensorflow
from trpo_tf.errors import RunDirError

EXPORT_EVAL_SEED = 12345
"""``eval EXPORT_DIR``'s default reset seed (an export is evaluated apart from its run)."""
EXPORT_EVAL_EPISODES = 10


def _check_eval_args(args: argparse.Namespace) -> None:
    """``eval`` options that gymnasium or numpy would reject with a traceback."""
    from trpo_tf.errors import ConfigError
    from trpo_tf.outputs import check_output_dir

    if args.episodes is not None and args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1 (episodes to evaluate), got {args.episodes}")
    if args.seed is not None and args.seed < 0:
        raise ConfigError(
            f"--seed must be >= 0 (gymnasium reset seeds are non-negative), got {args.seed}"
        )
    if args.video is not None:
        check_output_dir(_video_dir(args), "--video")
        _check_video(Path(args.path))


def _video_dir(args: argparse.Namespace) -> Path:
    return Path(args.video) if args.video else Path(args.path) / "videos"


def _env_of(path: Path) -> tuple[str, dict, int | None]:
    """``(env.id, env.kwargs, env.max_episode_steps)`` of a run or export, without TensorFlow."""
    import json

    from trpo_tf.config import load_experiment

    metadata = path / "metadata.json"
    if (path / "saved_model.pb").is_file() and metadata.is_file():
        env = json.loads(metadata.read_text()).get("env") or {}
        return str(env.get("id")), dict(env.get("kwargs") or {}), env.get("max_episode_steps")
    if not (path / "config.yaml").is_file():
        raise RunDirError(f"{path} is not a run directory: no config.yaml in it")
    config = load_experiment(path / "config.yaml")
    return config.env.id, dict(config.env.kwargs), config.env.max_episode_steps


def _check_video(path: Path) -> None:
    """``--video`` can render this env: its packages, then one frame (before any episode runs)."""
    from trpo_tf import extras
    from trpo_tf.envs import make_env_fn
    from trpo_tf.errors import ConfigError
    from trpo_tf.tf_runtime import quiet_start
    from trpo_tf.video import VideoError, cannot_render, frame_of

    env_id, kwargs, max_steps = _env_of(path)
    extras.check_video(env_id)
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # as trpo_tf.video does
    with quiet_start():
        try:
            env = make_env_fn(env_id, {**kwargs, "render_mode": "rgb_array"}, max_steps)()
        except ConfigError as error:
            raise VideoError(
                f"environment '{env_id}' cannot be built with render_mode='rgb_array': {error}"
            ) from error
        try:
            try:
                env.reset(seed=0)
            except Exception as error:  # noqa: BLE001 - any failure means it cannot render
                raise cannot_render(env_id, error) from error
            frame_of(env, env_id)
        finally:
            env.close()


def cmd_eval(args: argparse.Namespace) -> int:
    """``trpo-tf eval``: a run's or an export's deterministic return, with ``--video``."""
    _check_eval_args(args)
    import_tensorflow()
    from trpo_tf.export import evaluate_export, is_export_dir
    from trpo_tf.run_loading import evaluate_run, run_eval_settings

    path = Path(args.path)
    if is_export_dir(path):
        episodes = EXPORT_EVAL_EPISODES if args.episodes is None else args.episodes
        seed = EXPORT_EVAL_SEED if args.seed is None else args.seed
        returns = evaluate_export(path, episodes=episodes, seed=seed)
    else:
        # The run's own evaluation (seed + 10,000, eval.episodes): reproduces summary.json.
        episodes, seed = run_eval_settings(path, args.episodes, args.seed)
        returns = evaluate_run(path, episodes=episodes, seed=seed)
    print(
        f"eval return {returns.mean():.2f} ± {returns.std():.2f} over {returns.size} episodes "
        f"(min {returns.min():.2f}, max {returns.max():.2f})"
    )
    if args.video is not None:
        from trpo_tf.video import record_video

        video = record_video(path, _video_dir(args), seed)
        print(f"video: {video}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``trpo-tf export``: a run's policy as a SavedModel, or also TFLite."""
    import_tensorflow()
    from trpo_tf.export import ENV_TFLITE_FILE, export_run

    out = export_run(Path(args.run_dir), args.out, format=args.format, force=args.force)
    env_model = out.with_name(ENV_TFLITE_FILE)
    also = f" and {env_model}" if args.format == "tflite" and env_model.is_file() else ""
    print(f"exported {args.format}: {out}{also}")
    return 0
