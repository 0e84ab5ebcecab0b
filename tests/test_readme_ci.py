"""The README's test command is the one CI runs."""

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
