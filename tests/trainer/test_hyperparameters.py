"""TrpoHyperparameters refuses values outside each field's range, in one line."""

from __future__ import annotations

import dataclasses

import pytest

from trpo_tf.errors import ConfigError
from trpo_tf.trainer import TrpoHyperparameters

INVALID = [
    ("max_kl", 0.0, "> 0"),
    ("max_kl", -0.01, "> 0"),
    ("max_kl", float("nan"), "> 0"),
    ("max_kl", float("inf"), "> 0"),
    ("cg_iters", 0, ">= 1"),
    ("cg_iters", 2.5, "an int >= 1"),
    ("cg_iters", True, "an int >= 1"),
    ("cg_damping", -1e-3, ">= 0"),
    ("line_search_steps", 0, ">= 1"),
    ("line_search_backtrack", 0.0, "in (0, 1)"),
    ("line_search_backtrack", 1.0, "in (0, 1)"),
    ("line_search_backtrack", 1.5, "in (0, 1)"),
    ("fvp_subsample", 0.0, "in (0, 1]"),
    ("fvp_subsample", 1.01, "in (0, 1]"),
    ("value_epochs", -1, ">= 0"),
    ("value_minibatch_size", 0, ">= 1"),
    ("grad_norm_eps", -1e-8, ">= 0"),
    ("fvp_method", "fisher", "one of gauss_newton, hessian"),
    ("max_kl", "0.01", "a finite number > 0"),
]


@pytest.mark.parametrize(("field", "value", "allowed"), INVALID)
def test_out_of_range_field_is_a_one_line_config_error(field: str, value, allowed: str) -> None:
    with pytest.raises(ConfigError) as caught:
        TrpoHyperparameters(**{field: value})
    message = str(caught.value)
    assert message.startswith(f"TrpoHyperparameters.{field} must be ")
    assert allowed in message and repr(value) in message
    assert "\n" not in message


def test_replace_is_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"^TrpoHyperparameters\.max_kl must be"):
        dataclasses.replace(TrpoHyperparameters(), max_kl=-1.0)


@pytest.mark.parametrize(
    "valid",
    [
        {},
        {"cg_damping": 0.0, "value_epochs": 0, "grad_norm_eps": 0.0},
        {"fvp_subsample": 1.0, "line_search_backtrack": 0.5, "fvp_method": "hessian"},
        {"max_kl": 1, "cg_iters": 1, "line_search_steps": 1, "value_minibatch_size": 1},
    ],
)
def test_values_at_the_edges_of_each_range_are_accepted(valid: dict) -> None:
    hyperparameters = TrpoHyperparameters(**valid)
    for field, value in valid.items():
        assert getattr(hyperparameters, field) == value


def test_experiment_trainer_defaults_are_valid_hyperparameters() -> None:
    from trpo_tf.config.schema import TrainerConfig

    trainer = TrainerConfig()
    TrpoHyperparameters(
        max_kl=trainer.max_kl,
        cg_iters=trainer.cg_iters,
        cg_damping=trainer.cg_damping,
        line_search_steps=trainer.line_search_steps,
        line_search_backtrack=trainer.line_search_backtrack,
        fvp_subsample=trainer.fvp_subsample,
        fvp_method=trainer.fvp,
    )
