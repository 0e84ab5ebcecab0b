"""The README matches what it describes: the test command CI runs, config sections, --resume."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text)


def test_readme_opens_with_two_self_contained_commands() -> None:
    first_two = _readme_commands()[:2]
    assert len(first_two) == 2
    train_command, test_command = first_two
    assert "python3 -m venv .venv" in train_command and "trpo-tf train" in train_command
    assert "python3 -m venv .venv" in test_command and "pytest" in test_command


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_command = _readme_commands()[1]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


def test_ci_treats_no_tests_collected_as_failure() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert '"$status" -eq 5' in ci and "exit 1" in ci


def test_readme_lists_every_experiment_section() -> None:
    from trpo_tf.config.schema import ExperimentConfig
    from trpo_tf.config.schema_info import field_names, is_section, type_hints

    text = " ".join((ROOT / "README.md").read_text().split())
    listed = re.search(r"schema\.py` \(((?:`\w+`,? ?)+)\)", text)
    assert listed, "README: the list of experiment sections after trpo_tf/config/schema.py"
    hints = type_hints(ExperimentConfig)
    sections = [name for name in field_names(ExperimentConfig) if is_section(hints[name])]
    assert re.findall(r"`(\w+)`", listed.group(1)) == sections


def test_readme_names_every_key_a_resume_may_change() -> None:
    from trpo_tf.resume import RESUMABLE_KEYS

    text = (ROOT / "README.md").read_text()
    for key in RESUMABLE_KEYS:
        shown = key if "." in key else f"{key}.*"
        assert f"`{shown}`" in text, shown


def test_readme_lists_every_extra() -> None:
    import configparser

    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    text = (ROOT / "README.md").read_text()
    listed = set(re.findall(r"^\| `(\w+)`(?:, `(\w+)`)? \|", text, re.M))
    names = {name for pair in listed for name in pair if name}
    assert names == set(setup["options.extras_require"])


def test_readme_points_at_the_config_command_for_every_key() -> None:
    text = " ".join((ROOT / "README.md").read_text().split())
    assert "Every key of an experiment, its default and its meaning: `trpo-tf config" in text
    assert '-m "not slow"' in text


def test_readme_runs_are_of_shipped_experiments() -> None:
    """Every ``runs/NAME-s0-...`` the README loads is a run of an experiment that ships."""
    import yaml

    from trpo_tf.catalog import shipped

    names = {yaml.safe_load(path.read_text())["name"] for path in shipped().values()}
    text = (ROOT / "README.md").read_text()
    used = set(re.findall(r"runs/([a-z_]+)-s\d+-", text))
    assert used and used <= names, used - names
