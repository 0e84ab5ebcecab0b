"""Environment construction: gymnasium ids and ``trpo_tf.envs`` plug-ins."""

from trpo_tf.envs.factory import EnvSpec, describe, make_env_fn, make_vector_env

__all__ = ["EnvSpec", "describe", "make_env_fn", "make_vector_env"]
