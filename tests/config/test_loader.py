"""Tests of the YAML experiment loader: conversion, validation, overrides, dumping."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from trpo_tf.config import (
    ExperimentConfig,
    dump_experiment,
    experiment_from_dict,
    load_experiment,
    parse_overrides,
    to_dict,
)
from trpo_tf.config.schema import EnvConfig, PolicyConfig, TrainerConfig, WandbConfig
from trpo_tf.errors import ConfigError

DESIGN_EXAMPLE = """\
name: cartpole
seed: 0
env:
  id: CartPole-v1          # gymnasium id, or a name from trpo_tf.envs
  kwargs: {}
  n_envs: 8
  vector: sync             # sync | async
  normalize_obs: false
  normalize_reward: false
policy:
  distribution: auto       # auto picks from the action space
  hidden: [64, 64]
  activation: tanh
value:
  hidden: [64, 64]
  learning_rate: 1.0e-3
  epochs: 10
  minibatch_size: 64
advantage:
  estimator: gae
  gamma: 0.99
  lam: 0.95
  normalize: true
trainer:
  total_steps: 100000
  steps_per_iteration: 2048   # summed over all envs
  max_kl: 0.01
  cg_iters: 10
  cg_damping: 0.1
  line_search_steps: 10
  line_search_backtrack: 0.8
runner:
  kind: sync
eval:
  every: 10
  episodes: 10
tracking:
  wandb: {enabled: false, project: trpo-tf, mode: offline}
"""


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(data: object, overrides: tuple[str, ...] = (), source: str = "exp.yaml") -> str:
    """The message of the ConfigError that converting ``data`` raises; checks it is one line."""
    with pytest.raises(ConfigError) as info:
        experiment_from_dict(data, source, overrides=overrides)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return message


def load_error(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        load_experiment(path, overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- defaults


def test_empty_file_gives_defaults(tmp_path):
    assert load_experiment(write(tmp_path, "")) == ExperimentConfig()


def test_comment_only_file_gives_defaults(tmp_path):
    assert load_experiment(write(tmp_path, "# nothing here\n")) == ExperimentConfig()


def test_empty_dict_gives_defaults():
    assert experiment_from_dict({}) == ExperimentConfig()


def test_empty_section_gives_its_defaults(tmp_path):
    config = load_experiment(write(tmp_path, "trainer:\nenv:\n  kwargs:\n"))
    assert config == ExperimentConfig()


def test_design_example_loads(tmp_path):
    config = load_experiment(write(tmp_path, DESIGN_EXAMPLE))
    assert config.name == "cartpole"
    assert config.policy.hidden == (64, 64)
    assert config.value.learning_rate == pytest.approx(1e-3)
    assert config.tracking.wandb == WandbConfig(enabled=False, project="trpo-tf", mode="offline")
    assert config.trainer == TrainerConfig()


def test_unspecified_keys_keep_defaults(tmp_path):
    config = load_experiment(write(tmp_path, "trainer:\n  max_kl: 0.05\n"))
    assert config.trainer == dataclasses.replace(TrainerConfig(), max_kl=0.05)
    assert config.env == EnvConfig()


# --------------------------------------------------------------------------- numbers


def test_1e_minus_3_from_yaml_is_a_float(tmp_path):
    text = "value:\n  learning_rate: 1e-3\ntrainer:\n  max_kl: 2e-2\n"
    # The quirk being handled: PyYAML resolves `1e-3` to a string.
    assert yaml.safe_load(text)["value"]["learning_rate"] == "1e-3"
    config = load_experiment(write(tmp_path, text))
    assert isinstance(config.value.learning_rate, float)
    assert config.value.learning_rate == 1e-3
    assert config.trainer.max_kl == 0.02


def test_int_is_accepted_as_float():
    config = experiment_from_dict({"trainer": {"cg_damping": 1}})
    assert config.trainer.cg_damping == 1.0
    assert isinstance(config.trainer.cg_damping, float)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1e5", 100_000), ("1.0e+5", 100_000), ("100_000", 100_000), ("'2048'", 2048)],
)
def test_integral_values_are_accepted_as_int(tmp_path, text, expected):
    config = load_experiment(write(tmp_path, f"trainer:\n  total_steps: {text}\n"))
    assert config.trainer.total_steps == expected
    assert type(config.trainer.total_steps) is int


@pytest.mark.parametrize("value", [1.5, "1.5", "2.5e0", "abc", ".inf"])
def test_non_integral_values_are_rejected_as_int(value):
    message = config_error({"trainer": {"total_steps": value}})
    assert message.startswith("trainer.total_steps must be an integer, got ")
    assert "(in exp.yaml)" in message


@pytest.mark.parametrize(
    ("section", "key"),
    [("trainer", "total_steps"), ("trainer", "max_kl"), ("seed", None)],
)
def test_bool_is_not_a_number(section, key):
    data = {section: {key: True}} if key else {section: True}
    path = f"{section}.{key}" if key else section
    message = config_error(data)
    assert message.startswith(f"{path} must be ")
    assert "got bool true" in message


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "nan", "-inf"])
def test_non_finite_floats_are_rejected(value):
    message = config_error({"trainer": {"max_kl": value}})
    assert message.startswith("trainer.max_kl must be a finite number, got ")


# --------------------------------------------------------------------------- round trip


def _non_default_config() -> ExperimentConfig:
    return experiment_from_dict(
        {
            "name": "walker",
            "seed": 3,
            "env": {"id": "Walker2d-v5", "kwargs": {"max_episode_steps": 100, "x": [1, 2]}},
            "policy": {"hidden": [32, 16, 8], "distribution_kwargs": {"init_log_std": -0.5}},
            "value": {"learning_rate": 3e-4, "activation": "relu"},
            "trainer": {"steps_per_iteration": 4096, "max_kl": 0.02},
            "tracking": {"wandb": {"entity": "me", "tags": ["a", "b"], "mode": "online"}},
        }
    )


@pytest.mark.parametrize("config", [ExperimentConfig(), _non_default_config()])
def test_to_dict_round_trips(config):
    plain = to_dict(config)
    assert experiment_from_dict(plain) == config
    assert plain["policy"]["hidden"] == list(config.policy.hidden)
    yaml.safe_dump(plain)  # plain data only: no tuples, no dataclasses


@pytest.mark.parametrize("config", [ExperimentConfig(), _non_default_config()])
def test_dump_then_load_round_trips(tmp_path, config):
    path = dump_experiment(config, tmp_path / "config.yaml")
    assert load_experiment(path) == config


def test_dump_keeps_schema_order_and_inline_lists(tmp_path):
    text = dump_experiment(ExperimentConfig(), tmp_path / "config.yaml").read_text()
    top_level = re.findall(r"^(\w+):", text, flags=re.MULTILINE)
    assert top_level == [field.name for field in dataclasses.fields(ExperimentConfig)]
    assert "hidden: [64, 64]" in text


def test_to_dict_of_a_section():
    assert to_dict(PolicyConfig())["hidden"] == [64, 64]


def test_experiment_from_dict_does_not_modify_its_input():
    data = {"env": {"kwargs": {"a": 1}}}
    config = experiment_from_dict(data, overrides=["env.kwargs.b=2"])
    assert data == {"env": {"kwargs": {"a": 1}}}
    assert config.env.kwargs == {"a": 1, "b": 2}


# --------------------------------------------------------------------------- unknown keys


def test_unknown_key_suggests_closest(tmp_path):
    path = write(tmp_path, "trainer:\n  max_kll: 0.02\n")
    assert load_error(path) == (
        f"unknown key 'trainer.max_kll' in {path}; did you mean 'trainer.max_kl'?"
    )


def test_unknown_key_message_for_dict_source():
    message = config_error({"trainer": {"max_kll": 0.02}}, source="<dict>")
    assert message == "unknown key 'trainer.max_kll' in <dict>; did you mean 'trainer.max_kl'?"


def test_unknown_key_without_close_match_lists_valid_keys():
    message = config_error({"eval": {"frequency": 3}})
    assert message.startswith("unknown key 'eval.frequency' in exp.yaml; ")
    assert "valid keys under 'eval': every, episodes" in message


def test_unknown_top_level_key_lists_sections():
    message = config_error({"optimizer": {}})
    assert "valid keys at the top level: name, seed, env," in message


def test_key_in_the_wrong_section_suggests_where_it_belongs():
    assert "did you mean 'trainer.max_kl'?" in config_error({"max_kl": 0.02})
    assert "did you mean 'advantage.gamma'?" in config_error({"trainer": {"gamma": 0.9}})
    assert "'policy.hidden' or 'value.hidden'" in config_error({"hidden": [8]})


# --------------------------------------------------------------------------- wrong types


@pytest.mark.parametrize(
    ("data", "start", "expected"),
    [
        ({"name": 123}, "name must be a string, got int 123", "quotes"),
        ({"env": {"normalize_obs": "yes please"}}, "env.normalize_obs must be true or false", ""),
        ({"env": {"n_envs": "eight"}}, "env.n_envs must be an integer, got str 'eight'", ""),
        ({"trainer": {"max_kl": "small"}}, "trainer.max_kl must be a number, got str", ""),
        ({"policy": {"hidden": 64}}, "policy.hidden must be a list of integers", "[64]"),
        ({"policy": {"hidden": "64, 64"}}, "policy.hidden must be a list of integers", ""),
        ({"policy": {"hidden": [64, "a"]}}, "policy.hidden[1] must be an integer", ""),
        ({"policy": {"hidden": [64, 1.5]}}, "policy.hidden[1] must be an integer", ""),
        ({"env": {"kwargs": [1, 2]}}, "env.kwargs must be a mapping, got list", "{key: value}"),
        ({"env": {"kwargs": {1: "a"}}}, "env.kwargs keys must be strings", ""),
        (
            {"tracking": {"wandb": {"entity": 5}}},
            "tracking.wandb.entity must be a string or null",
            "",
        ),
        (
            {"tracking": {"wandb": {"tags": ["a", 1]}}},
            "tracking.wandb.tags[1] must be a string",
            "",
        ),
    ],
)
def test_wrong_type_names_key_expected_type_and_value(data, start, expected):
    message = config_error(data)
    assert message.startswith(start)
    assert "(in exp.yaml)" in message
    assert expected in message


@pytest.mark.parametrize("section", ["trainer", "env", "tracking"])
def test_section_that_is_not_a_mapping(section):
    message = config_error({section: 5})
    assert message.startswith(f"{section} must be a mapping of {section} keys (")
    assert "got int 5 (in exp.yaml)" in message


def test_nested_section_that_is_not_a_mapping():
    message = config_error({"tracking": {"wandb": True}})
    assert message.startswith("tracking.wandb must be a mapping of tracking.wandb keys (enabled,")


def test_optional_string_accepts_null_and_string():
    assert (
        experiment_from_dict({"tracking": {"wandb": {"entity": None}}}).tracking.wandb.entity
        is None
    )
    assert (
        experiment_from_dict({"tracking": {"wandb": {"entity": "me"}}}).tracking.wandb.entity
        == "me"
    )


def test_list_becomes_tuple():
    config = experiment_from_dict(
        {"policy": {"hidden": [128, 64]}, "tracking": {"wandb": {"tags": ["x"]}}}
    )
    assert config.policy.hidden == (128, 64)
    assert config.tracking.wandb.tags == ("x",)


# --------------------------------------------------------------------------- ranges and choices


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"trainer": {"max_kl": -0.1}}, "trainer.max_kl must be > 0, got -0.1 (in exp.yaml)"),
        ({"trainer": {"max_kl": 0}}, "trainer.max_kl must be > 0, got 0.0 (in exp.yaml)"),
        (
            {"advantage": {"gamma": 1.5}},
            "advantage.gamma must be >= 0 and <= 1, got 1.5 (in exp.yaml)",
        ),
        ({"env": {"n_envs": 0}}, "env.n_envs must be >= 1 and <= 1024, got 0 (in exp.yaml)"),
        ({"seed": -1}, "seed must be >= 0 and <= 4294967295, got -1 (in exp.yaml)"),
        (
            {"trainer": {"line_search_backtrack": 1.0}},
            "trainer.line_search_backtrack must be > 0 and < 1, got 1.0 (in exp.yaml)",
        ),
        (
            {"trainer": {"fvp_subsample": 0}},
            "trainer.fvp_subsample must be > 0 and <= 1, got 0.0 (in exp.yaml)",
        ),
    ],
)
def test_out_of_range(data, message):
    assert config_error(data) == message


def test_bounds_are_inclusive_where_declared():
    config = experiment_from_dict(
        {"advantage": {"gamma": 1, "lam": 0}, "trainer": {"cg_damping": 0}}
    )
    assert (config.advantage.gamma, config.advantage.lam, config.trainer.cg_damping) == (
        1.0,
        0.0,
        0.0,
    )


def test_choice_violation_lists_allowed_and_suggests_closest():
    message = config_error({"env": {"vector": "asynk"}})
    assert message == (
        "env.vector must be one of 'sync', 'async', got str 'asynk' (in exp.yaml); "
        "did you mean 'async'?"
    )


def test_choice_violation_without_close_match():
    message = config_error({"policy": {"activation": "sigmoid"}})
    assert message.startswith(
        "policy.activation must be one of 'tanh', 'relu', 'elu', 'gelu', 'silu'"
    )
    assert "did you mean" not in message


def test_layer_sizes_must_be_positive():
    assert config_error({"policy": {"hidden": [64, 0]}}) == (
        "policy.hidden[1] must be >= 1 and <= 16384, got 0 (in exp.yaml)"
    )


def test_layer_sizes_must_not_be_empty():
    message = config_error({"value": {"hidden": []}})
    assert message.startswith("value.hidden must be a non-empty list, got []")


# --------------------------------------------------------------------------- cross-field checks


def test_steps_per_iteration_must_be_divisible_by_n_envs():
    message = config_error({"env": {"n_envs": 3}, "trainer": {"steps_per_iteration": 2000}})
    assert message.startswith("trainer.steps_per_iteration must be divisible by env.n_envs")
    assert "got 2000 and 3" in message
    assert "set trainer.steps_per_iteration to 2001" in message


@pytest.mark.parametrize(
    ("steps", "n_envs", "nearest"),
    [(2047, 8, "2048"), (2044, 8, "2040"), (2052, 8, "2048"), (5, 8, "8")],
)
def test_divisibility_suggests_nearest_valid_value(steps, n_envs, nearest):
    data = {"env": {"n_envs": n_envs}, "trainer": {"steps_per_iteration": steps}}
    if steps < 64:
        data["value"] = {"minibatch_size": 1}
    message = config_error(data)
    assert f"set trainer.steps_per_iteration to {nearest} " in message


def test_minibatch_must_fit_in_one_iteration():
    message = config_error({"value": {"minibatch_size": 4096}})
    assert message.startswith("value.minibatch_size must be <= trainer.steps_per_iteration")
    assert "got 4096 > 2048" in message


# --------------------------------------------------------------------------- files


def test_missing_file(tmp_path):
    message = load_error(tmp_path / "nope.yaml")
    assert message.startswith(f"experiment file not found: {tmp_path / 'nope.yaml'}")


def test_directory_instead_of_file(tmp_path):
    assert load_error(tmp_path).startswith(f"{tmp_path} is a directory")


def test_invalid_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "name: x\ntrainer:\n  max_kl: 0.01\n   cg_iters: 5\n")
    message = load_error(path)
    assert message.startswith(f"{path}: invalid YAML at line 4")


def test_unclosed_bracket_is_invalid_yaml(tmp_path):
    path = write(tmp_path, "policy:\n  hidden: [64, 64\n")
    assert load_error(path).startswith(f"{path}: invalid YAML at line ")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path, text):
    path = write(tmp_path, text)
    assert load_error(path).startswith(
        f"{path}: the top level must be a mapping of experiment keys"
    )


def test_errors_from_a_file_name_the_file(tmp_path):
    path = write(tmp_path, "trainer:\n  max_kl: -1\n")
    assert load_error(path) == f"trainer.max_kl must be > 0, got -1.0 (in {path})"


# --------------------------------------------------------------------------- overrides


def test_override_scalars_lists_and_bools(tmp_path):
    path = write(tmp_path, DESIGN_EXAMPLE)
    config = load_experiment(
        path,
        [
            "trainer.max_kl=0.02",
            "policy.hidden=[128,128]",
            "env.normalize_obs=true",
            "value.learning_rate=3e-4",
            "name=pendulum",
            "tracking.wandb.tags=[a, b]",
        ],
    )
    assert config.trainer.max_kl == 0.02
    assert config.policy.hidden == (128, 128)
    assert config.env.normalize_obs is True
    assert config.value.learning_rate == 3e-4
    assert config.name == "pendulum"
    assert config.tracking.wandb.tags == ("a", "b")


def test_override_into_dict_field_merges_with_file(tmp_path):
    path = write(tmp_path, "env:\n  kwargs: {render_mode: null}\n")
    config = load_experiment(path, ["env.kwargs.max_episode_steps=100"])
    assert config.env.kwargs == {"render_mode": None, "max_episode_steps": 100}


def test_override_into_nested_dict_creates_intermediate_mappings(tmp_path):
    config = load_experiment(write(tmp_path, ""), ["advantage.kwargs.extra.depth=2"])
    assert config.advantage.kwargs == {"extra": {"depth": 2}}


def test_override_creates_missing_section(tmp_path):
    config = load_experiment(write(tmp_path, "name: x\n"), ["tracking.wandb.enabled=true"])
    assert config.tracking.wandb.enabled is True


def test_override_with_null(tmp_path):
    path = write(tmp_path, "tracking:\n  wandb:\n    entity: me\n")
    assert load_experiment(path, ["tracking.wandb.entity=null"]).tracking.wandb.entity is None


def test_later_override_wins(tmp_path):
    config = load_experiment(write(tmp_path, ""), ["trainer.max_kl=0.02", "trainer.max_kl=0.03"])
    assert config.trainer.max_kl == 0.03


def test_override_of_whole_dict_replaces_it(tmp_path):
    path = write(tmp_path, "env:\n  kwargs: {a: 1}\n")
    assert load_experiment(path, ["env.kwargs={b: 2}"]).env.kwargs == {"b": 2}


def test_override_unknown_key_suggests_closest(tmp_path):
    message = load_error(write(tmp_path, ""), ("trainer.max_kll=0.02",))
    assert message == (
        "unknown key 'trainer.max_kll' in --set trainer.max_kll=0.02; "
        "did you mean 'trainer.max_kl'?"
    )


def test_override_without_equals_shows_expected_form(tmp_path):
    message = load_error(write(tmp_path, ""), ("trainer.max_kl",))
    assert "key.path=value" in message
    assert "'trainer.max_kl'" in message


@pytest.mark.parametrize("text", ["=3", "trainer..max_kl=3", ".seed=3"])
def test_override_with_empty_key_is_rejected(text):
    with pytest.raises(ConfigError, match="trainer.max_kl=0.02"):
        parse_overrides([text])


def test_override_below_a_scalar_is_rejected():
    with pytest.raises(ConfigError, match=r"^trainer\.max_kl is a number, not a section"):
        parse_overrides(["trainer.max_kl.value=3"])


def test_override_below_a_scalar_in_the_file_is_rejected(tmp_path):
    path = write(tmp_path, "env:\n  kwargs: 5\n")
    message = load_error(path, ("env.kwargs.a=1",))
    assert message.startswith("env.kwargs must be a mapping to apply --set env.kwargs.a=1")


def test_override_value_errors_name_the_override(tmp_path):
    message = load_error(write(tmp_path, ""), ("trainer.max_kl=-0.1",))
    assert message == "trainer.max_kl must be > 0, got -0.1 (in --set trainer.max_kl=-0.1)"


def test_override_value_type_error(tmp_path):
    message = load_error(write(tmp_path, ""), ("env.normalize_obs=maybe",))
    assert message.startswith("env.normalize_obs must be true or false, got str 'maybe'")


def test_override_value_that_is_not_yaml(tmp_path):
    message = load_error(write(tmp_path, ""), ("policy.hidden=[64,",))
    assert message.startswith("policy.hidden: the value '[64,' of override ")


def test_override_can_fix_divisibility(tmp_path):
    path = write(tmp_path, "env:\n  n_envs: 3\ntrainer:\n  steps_per_iteration: 2001\n")
    assert load_experiment(path).trainer.steps_per_iteration == 2001
    message = load_error(path, ("env.n_envs=4",))
    assert "(in " + str(path) + " and --set env.n_envs=4)" in message
    assert "set trainer.steps_per_iteration to 2000 " in message


def test_parse_overrides_returns_parsed_values_in_order():
    parsed = parse_overrides(
        ["trainer.max_kl=0.02", "policy.hidden=[128,128]", "env.kwargs.a.b=x", "trainer.max_kl=1"]
    )
    assert parsed == {"policy.hidden": [128, 128], "env.kwargs.a.b": "x", "trainer.max_kl": 1}
    assert list(parsed) == ["policy.hidden", "env.kwargs.a.b", "trainer.max_kl"]


def test_empty_override_value_is_null():
    assert parse_overrides(["tracking.wandb.entity="]) == {"tracking.wandb.entity": None}


def test_budget_must_hold_one_iteration():
    # total_steps is rounded down to whole iterations; a budget below one iteration
    # used to train a whole iteration anyway, more steps than asked for.
    message = config_error({"trainer": {"total_steps": 4096, "steps_per_iteration": 8192}})
    assert message.startswith(
        "trainer.total_steps must be >= trainer.steps_per_iteration (training runs whole "
        "iterations), got 4096 < 8192 (in exp.yaml)"
    )
    assert "raise trainer.total_steps to at least 8192" in message


def test_budget_of_exactly_one_iteration_is_fine():
    config = experiment_from_dict({"trainer": {"total_steps": 2048, "steps_per_iteration": 2048}})
    assert config.trainer.total_steps == 2048


def test_max_kl_final_may_shrink_the_trust_region_but_not_widen_it():
    message = config_error({"trainer": {"max_kl": 0.01, "max_kl_final": 0.02}})
    assert message.startswith(
        "trainer.max_kl_final must be <= trainer.max_kl, got 0.02 > 0.01 (in exp.yaml)"
    )
    assert "null for a constant trust region" in message
    assert config_error({"trainer": {"max_kl_final": 0}}).startswith(
        "trainer.max_kl_final must be > 0"
    )
    config = experiment_from_dict({"trainer": {"max_kl": 0.01, "max_kl_final": 0.001}})
    assert config.trainer.max_kl_final == 0.001
    assert experiment_from_dict({}).trainer.max_kl_final is None
