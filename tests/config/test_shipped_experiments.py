"""Every experiment YAML shipped in experiments/ passes the schema and names a known plug-in."""

from __future__ import annotations

from pathlib import Path

import pytest

from trpo_tf.config import load_experiment
from trpo_tf.registry import ADVANTAGES, DISTRIBUTIONS, has

EXPERIMENTS = sorted(
    path
    for path in (Path(__file__).resolve().parents[2] / "experiments").rglob("*.yaml")
    if not path.name.endswith(".space.yaml")  # trpo-tf tune's search spaces
)
SPACES = sorted((Path(__file__).resolve().parents[2] / "experiments").rglob("*.space.yaml"))


def test_there_are_shipped_experiments() -> None:
    assert len(EXPERIMENTS) >= 10


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_shipped_experiment_loads(path: Path) -> None:
    config = load_experiment(path)
    assert config.name
    assert has(ADVANTAGES, config.advantage.estimator)
    if config.policy.distribution != "auto":
        assert has(DISTRIBUTIONS, config.policy.distribution)


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_shipped_search_space_fits_its_experiment(path: Path) -> None:
    from trpo_tf.tune.space import check_space, load_space

    experiment = path.with_name(path.name.replace(".space.yaml", ".yaml"))
    check_space(experiment, (), load_space(path))
