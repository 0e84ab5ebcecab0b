"""Every accepted config value works: upper bounds, float32 rounding, names, render modes."""

from __future__ import annotations

import pytest

from trpo_tf.config import cross_checks, experiment_from_dict
from trpo_tf.config.cross_checks import mlp_parameters, training_memory_bytes
from trpo_tf.config.schema import INT32_MAX, MAX_LAYERS, MAX_WIDTH, SEED_MAX
from trpo_tf.errors import ConfigError


def override_error(*overrides: str) -> str:
    with pytest.raises(ConfigError) as info:
        experiment_from_dict({}, "exp.yaml", overrides=overrides)
    message = str(info.value)
    assert "\n" not in message
    assert len(message) < 500, message
    return message


def accepted(*overrides: str):
    return experiment_from_dict({}, "exp.yaml", overrides=overrides)


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "trainer.total_steps=1e400",
            "trainer.total_steps must be >= 1 and <= 1000000000000000, got ~1e+400",
        ),
        ("seed=4294967296", "seed must be >= 0 and <= 4294967295, got 4294967296"),
        ("policy.hidden=[100000000000]", "policy.hidden[0] must be >= 1 and <= 16384"),
        ("value.hidden=[64, 100000]", "value.hidden[1] must be >= 1 and <= 16384, got 100000"),
        ("env.n_envs=1e12", "env.n_envs must be >= 1 and <= 1024, got 1000000000000"),
        ("trainer.steps_per_iteration=1e9", "trainer.steps_per_iteration must be >= 1 and <= "),
        ("trainer.threads=100000", "trainer.threads must be >= 0 and <= 1024"),
        ("tracking.wandb.init_timeout=1e300", "tracking.wandb.init_timeout must be > 0 and <="),
        # Integers without a bound of their own fit TensorFlow's int32.
        ("trainer.cg_iters=3e9", f"trainer.cg_iters must be <= {INT32_MAX}, got 3000000000"),
        ("eval.episodes=1e100", f"eval.episodes must be <= {INT32_MAX}, got ~1e+100"),
        ("env.max_episode_steps=0", "env.max_episode_steps must be >= 1, got 0"),
    ],
)
def test_values_that_overflow_or_exhaust_memory_are_refused(override, message):
    assert override_error(override).startswith(message)


def test_largest_accepted_values_are_accepted():
    config = accepted(
        f"seed={SEED_MAX}",
        "trainer.total_steps=1e15",
        "env.n_envs=1024",
        "trainer.threads=1024",
        f"trainer.cg_iters={INT32_MAX}",
        "env.max_episode_steps=1000",
    )
    assert config.seed == 2**32 - 1
    assert config.trainer.total_steps == 10**15
    assert config.env.max_episode_steps == 1000
    assert accepted().env.max_episode_steps is None


def test_hidden_lists_are_bounded_in_length():
    message = override_error(f"policy.hidden=[{', '.join(['4'] * (MAX_LAYERS + 1))}]")
    assert message.startswith(f"policy.hidden must have at most {MAX_LAYERS} items, got 65")


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.max_kl=1e-50", "trainer.max_kl must be > 0 as a float32"),
        ("value.learning_rate=1e-46", "value.learning_rate must be > 0 as a float32"),
        (
            "trainer.line_search_backtrack=0.99999999999",
            "trainer.line_search_backtrack must be > 0 and < 1 as a float32",
        ),
        ("trainer.max_kl=1e39", "trainer.max_kl must be at most 3.4028235e+38 in magnitude"),
        ("env.clip_obs=1e300", "env.clip_obs must be at most 3.4028235e+38 in magnitude"),
    ],
)
def test_floats_are_checked_as_the_float32_they_are_used_as(override, message):
    error = override_error(override)
    assert error.startswith(message)
    if "as a float32" in message:
        assert "which rounds to" in error


@pytest.mark.parametrize(
    "name, problem",
    [
        ("../../x", "it contains '/'"),
        ("a/b", "it contains '/'"),
        ('"a\\\\b"', "it contains '\\\\'"),
        ("..", "'..' is not a directory name"),
        ("''", "'' is not a directory name"),
        ('"a\\nb"', "it contains a control character"),
        ("x" * 201, "it is 201 bytes long (at most 200)"),
    ],
)
def test_name_must_be_a_single_path_component(name, problem):
    message = override_error(f"name={name}")
    assert message.startswith("name must be a single path component (it names the run directory)")
    assert f": {problem}; choose a plain name" in message
    assert accepted("name=cartpole-v1_ablation.2").name == "cartpole-v1_ablation.2"


def test_render_mode_other_than_rgb_array_is_refused_for_training():
    message = override_error("env.kwargs.render_mode=human")
    assert message == (
        "env.kwargs.render_mode must be 'rgb_array' or null for training, got str 'human' "
        "(in --set env.kwargs.render_mode=human); remove it: training never renders "
        "(trpo-tf eval --video records rgb_array frames itself)"
    )
    assert accepted("env.kwargs.render_mode=rgb_array").env.kwargs == {"render_mode": "rgb_array"}
    assert accepted("env.kwargs.render_mode=null").env.kwargs == {"render_mode": None}


def test_two_time_limits_are_refused():
    message = override_error("env.kwargs.max_episode_steps=10", "env.max_episode_steps=20")
    assert "env.kwargs.max_episode_steps and env.max_episode_steps are both set" in message


def test_memory_estimate_against_the_machine(monkeypatch):
    default = accepted()
    assert mlp_parameters((64, 64)) == (1 * 64 + 64) + (64 * 64 + 64) + (64 + 1)
    assert training_memory_bytes(default) < 64 * 2**20
    monkeypatch.setattr(cross_checks, "machine_memory_bytes", lambda: 8 * 2**30)
    wide = f"policy.hidden=[{MAX_WIDTH}, {MAX_WIDTH}, {MAX_WIDTH}]"
    message = override_error(wide)
    assert message.startswith(
        "policy.hidden, value.hidden and trainer.steps_per_iteration need roughly "
    )
    assert "more than this machine's 8.0 GiB of memory (in --set policy.hidden=" in message
    assert message.endswith(
        "use narrower or fewer hidden layers or fewer trainer.steps_per_iteration"
    )
    big_batch = override_error(
        "trainer.steps_per_iteration=16777216", "trainer.total_steps=16777216", "env.n_envs=1"
    )
    assert "16,777,216 samples per iteration" in big_batch
    accepted("policy.hidden=[256, 256]")  # well within 8 GiB
    monkeypatch.setattr(cross_checks, "machine_memory_bytes", lambda: None)
    accepted(wide)  # no figure from the OS: no estimate
