"""Video recording errors say what to do."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from trpo_tf.video import VideoError, collect_frames


class NoOpenGLEnv(gym.Env):
    """Renders like a MuJoCo env on a machine with no OpenGL backend selected."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,))
    action_space = gym.spaces.Box(-1.0, 1.0, (1,))

    def reset(self, *, seed=None, options=None):
        return np.zeros(1, np.float32), {}

    def render(self):
        raise RuntimeError(
            "an OpenGL platform library has not been loaded into this process, this most "
            "likely means that a valid OpenGL context has not been created before "
            "mjr_makeContext was called"
        )


def test_missing_opengl_backend_hints_at_mujoco_gl():
    with pytest.raises(VideoError) as caught:
        collect_frames(NoOpenGLEnv, lambda obs: np.zeros((1, 1)), "Hopper-v5", seed=0)
    message = str(caught.value)
    assert "MUJOCO_GL=egl" in message and "MUJOCO_GL=osmesa" in message, message
    assert "'Hopper-v5'" in message and "\n" not in message
