"""Record one deterministic episode of a trained policy as a video.

Works for a run directory and for an exported SavedModel directory. Frames come
from the environment built with ``render_mode="rgb_array"``; the file is an MP4
when ``moviepy`` is installed (what gymnasium's video utilities use) and an
animated GIF written with Pillow otherwise.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from trpo_tf.errors import TrpoTfError, first_line


class VideoError(TrpoTfError, RuntimeError):
    """The environment cannot render frames, or no video writer is installed."""


EnvFactory = Callable[..., Callable[[], Any]]
"""``factory(**extra_env_kwargs) -> zero-argument env constructor``."""


def _run_dir_policy(run_dir: Path) -> tuple[str, EnvFactory, Callable[[np.ndarray], np.ndarray]]:
    from trpo_tf.envs import make_env_fn
    from trpo_tf.evaluation import RecurrentAct
    from trpo_tf.run_loading import deterministic_act, load_run

    config, agent = load_run(run_dir)
    policy, normalizer = agent.policy, agent.observation_normalizer
    mode = deterministic_act(agent, normalizer.shape[0])
    if isinstance(mode, RecurrentAct):
        mode.begin(1)  # one episode per recording

    def act(raw: np.ndarray) -> np.ndarray:
        return policy.head.to_env_action(mode(normalizer(raw)))

    def env_factory(**extra: Any) -> Callable[[], Any]:
        return make_env_fn(
            config.env.id, {**config.env.kwargs, **extra}, config.env.max_episode_steps
        )

    return config.env.id, env_factory, act


def _acting_policy(path: Path) -> tuple[str, EnvFactory, Callable[[np.ndarray], np.ndarray]]:
    """(env id, env factory, raw observations ``[n, obs_dim]`` -> env actions)."""
    from trpo_tf.export import LoadedExport, is_export_dir

    if is_export_dir(path):
        loaded = LoadedExport(path)
        return loaded.metadata["env"]["id"], loaded.env_fn, loaded.act
    return _run_dir_policy(path)


RGB_ARRAY_HINT = "--video needs an env that supports render_mode='rgb_array'"
OPENGL_HINT = (
    "MuJoCo renders through OpenGL: without a display set MUJOCO_GL=egl (GPU) or "
    "MUJOCO_GL=osmesa (CPU), e.g. MUJOCO_GL=egl trpo-tf eval RUN --video"
)


def render_hint(error: BaseException) -> str:
    """What to do about a rendering failure (the OpenGL backend hint for MuJoCo)."""
    text = str(error)
    if any(marker in text for marker in ("OpenGL", "GLFW", "EGL", "mjr_makeContext")):
        return OPENGL_HINT
    return RGB_ARRAY_HINT


def cannot_render(env_id: str, error: BaseException) -> VideoError:
    """The one-line error for an env whose reset or render failed with ``error``."""
    return VideoError(
        f"environment '{env_id}' cannot render rgb_array frames "
        f"({first_line(error)}); {render_hint(error)}"
    )


def frame_of(env: Any, env_id: str) -> np.ndarray:
    """``env.render()`` checked to be an RGB(A) image ``[H, W, 3|4]``.

    Raises:
        VideoError: it failed or returned something else (one line, with how to fix it).
    """
    try:
        frame = env.render()
    except Exception as error:  # noqa: BLE001 - any failure means it cannot render
        raise cannot_render(env_id, error) from error
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[-1] not in (3, 4):
        raise VideoError(
            f"environment '{env_id}' cannot render rgb_array frames (render() returned "
            f"{type(frame).__name__}); {RGB_ARRAY_HINT}"
        )
    return np.asarray(frame[..., :3], np.uint8)


def collect_frames(
    env_fn: Callable[[], Any],
    act: Callable[[np.ndarray], np.ndarray],
    env_id: str,
    seed: int,
    max_steps: int = 10_000,
) -> tuple[list[np.ndarray], float, float]:
    """Frames ``[H, W, 3]`` uint8 of one episode, its return and the env's frame rate."""
    env = env_fn()
    try:
        fps = float((env.metadata or {}).get("render_fps") or 30)
        observation, _ = env.reset(seed=seed)
        frames = [frame_of(env, env_id)]
        total = 0.0
        for _ in range(max_steps):
            raw = np.asarray(observation, np.float64).reshape(1, -1)
            observation, reward, terminated, truncated, _ = env.step(act(raw)[0])
            total += float(reward)
            frames.append(frame_of(env, env_id))
            if terminated or truncated:
                break
        return frames, total, fps
    finally:
        env.close()


def write_frames(frames: list[np.ndarray], out_base: Path, fps: float) -> Path:
    """``out_base.mp4`` with moviepy, else ``out_base.gif`` with Pillow."""
    out_base.parent.mkdir(parents=True, exist_ok=True)
    if importlib.util.find_spec("moviepy") is not None:
        try:
            from moviepy import ImageSequenceClip
        except ImportError:  # moviepy < 2
            from moviepy.editor import ImageSequenceClip

        path = out_base.with_suffix(".mp4")
        ImageSequenceClip(frames, fps=fps).write_videofile(str(path), logger=None)
        return path
    if importlib.util.find_spec("PIL") is None:
        raise VideoError("--video needs moviepy (MP4) or Pillow (GIF); install one of them")
    from PIL import Image

    path = out_base.with_suffix(".gif")
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(
        path,
        save_all=True,
        append_images=images[1:],
        duration=max(1, round(1000.0 / fps)),
        loop=0,
    )
    return path


def record_video(path: str | Path, out_dir: str | Path, seed: int) -> Path:
    """Record one deterministic episode of the policy at ``path`` into ``out_dir``.

    Args:
        path: a run directory or an exported SavedModel directory.
        out_dir: folder for the video (created).
        seed: the episode's reset seed.

    Returns:
        The written ``.mp4`` or ``.gif`` file.

    Raises:
        VideoError: the environment cannot render, or no writer is installed.
    """
    from trpo_tf.errors import ConfigError

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        # rgb_array rendering needs no window; without this pygame's SDL complains
        # about the missing display on headless machines.
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    env_id, env_factory, act = _acting_policy(Path(path))
    try:
        env_fn = env_factory(render_mode="rgb_array")
        frames, _, fps = collect_frames(env_fn, act, env_id, seed)
    except ConfigError as error:
        raise VideoError(
            f"environment '{env_id}' cannot be built with render_mode='rgb_array': {error}"
        ) from error
    safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in env_id)
    return write_frames(frames, Path(out_dir) / f"{safe_name}-seed{seed}", fps)
