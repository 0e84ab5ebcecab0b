"""Acceptance: a plug-in written from docs/plugins.md alone installs, lists and trains.

The example package is assembled from the ``# file: PATH`` code blocks of
docs/plugins.md, pip-installed into the running environment, exercised through the
``trpo-tf`` CLI in subprocesses, and uninstalled again. A second package then adds a
plug-in that fails to import and a duplicate of the example's name, and the
registry's documented messages are checked while everything else keeps working.
The guide's network example (blocks under ``trpo-tf-layernorm-mlp/``) is built,
installed, tested and trained the same way.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "plugins.md"
EXAMPLE_PACKAGE = "trpo-tf-fixed-std"
EXAMPLE_NAME = "fixed_std_gaussian"
NETWORK_PACKAGE = "trpo-tf-layernorm-mlp"
NETWORK_NAME = "layernorm_mlp"
TIMEOUT_S = 300
FAST = ["--set", "trainer.jit_compile=false", "--set", "tracking.tensorboard=false"]

BROKEN_PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "trpo-tf-authoring-broken"
version = "0.2.0"
dependencies = ["trpo_tf"]

[project.entry-points."trpo_tf.distributions"]
authoring_broken = "trpo_tf_authoring_broken:make_head"
fixed_std_gaussian = "trpo_tf_authoring_broken:make_head"

[tool.setuptools]
packages = ["trpo_tf_authoring_broken"]
"""
BROKEN_MODULE = "import trpo_tf_authoring_missing_dependency  # noqa: F401\n"


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return f"rc={self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr[-4000:]}"


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="", WANDB_MODE="disabled")


def _cli_command(args: list[str]) -> list[str]:
    script = Path(sys.executable).with_name("trpo-tf")
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "trpo_tf.cli", *args]


def _run_all(commands: list[list[str]], cwd: Path) -> list[Result]:
    """Runs commands concurrently (each imports TensorFlow: seconds of start-up)."""
    processes = [
        subprocess.Popen(
            command,
            cwd=cwd,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for command in commands
    ]
    results = []
    for process in processes:
        try:
            stdout, stderr = process.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        results.append(Result(process.returncode, stdout, stderr))
    return results


def _run(command: list[str], cwd: Path) -> Result:
    return _run_all([command], cwd)[0]


def _pip(*args: str, cwd: Path) -> Result:
    return _run([sys.executable, "-m", "pip", *args], cwd)


def _install(directory: Path) -> None:
    result = _pip(
        "install", "-q", "--no-deps", "--no-build-isolation", str(directory), cwd=directory
    )
    assert result.returncode == 0, result.describe()


def _uninstall(package: str, cwd: Path) -> None:
    _pip("uninstall", "-y", "-q", package, cwd=cwd)


def _all_doc_files() -> dict[str, str]:
    """``{path: text}`` of the code blocks in docs/plugins.md that start ``# file: PATH``."""
    blocks = re.findall(r"```[a-z]*\n# file: (\S+)\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    return dict(blocks)


def _doc_files() -> dict[str, str]:
    """The distribution example's files (every block outside the network example's directory)."""
    prefix = f"{NETWORK_PACKAGE}/"
    return {path: text for path, text in _all_doc_files().items() if not path.startswith(prefix)}


def _network_doc_files() -> dict[str, str]:
    """The network example's files, relative to its directory ``trpo-tf-layernorm-mlp/``."""
    prefix = f"{NETWORK_PACKAGE}/"
    return {
        path[len(prefix) :]: text
        for path, text in _all_doc_files().items()
        if path.startswith(prefix)
    }


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _plugin_rows(listing: str, name: str) -> list[str]:
    return [line for line in listing.splitlines() if line.split()[:1] == [name]]


def _metrics_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The package from the docs, installed for this module, uninstalled afterwards."""
    setuptools = pytest.importorskip("setuptools", reason="building a plug-in needs setuptools")
    if tuple(int(part) for part in setuptools.__version__.split(".")[:2]) < (70, 1):
        pytest.importorskip("wheel", reason="setuptools < 70.1 builds wheels with `wheel`")
    files = _doc_files()
    assert {"pyproject.toml", "experiment.yaml"} <= set(files), sorted(files)
    assert any(path.endswith(".py") and path.startswith("tests/") for path in files)
    root = _write_package(tmp_path_factory.mktemp("example"), files)
    try:
        _install(root)
        yield root
    finally:
        _uninstall(EXAMPLE_PACKAGE, root)
        listing = _run(_cli_command(["plugins"]), root)
        assert listing.returncode == 0, listing.describe()
        assert not _plugin_rows(listing.stdout, EXAMPLE_NAME), listing.stdout


def test_installed_example_is_listed_and_passes_its_own_tests(example) -> None:
    listing, tests = _run_all(
        [
            _cli_command(["plugins"]),
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        ],
        example,
    )
    assert listing.returncode == 0, listing.describe()
    (row,) = _plugin_rows(listing.stdout, EXAMPLE_NAME)
    assert EXAMPLE_PACKAGE in row and "trpo_tf_fixed_std:make_fixed_std_gaussian" in row
    section = listing.stdout.split("trpo_tf.distributions", 1)[1].split("trpo_tf.advantages")[0]
    assert row in section
    assert tests.returncode == 0, tests.describe()
    assert re.search(r"\b2 passed\b", tests.stdout), tests.stdout


def test_trains_the_docs_experiment_for_two_iterations(example, tmp_path) -> None:
    run_dir = tmp_path / "run"
    result = _run(
        _cli_command(["train", str(example / "experiment.yaml"), *FAST, "--run-dir", str(run_dir)]),
        tmp_path,
    )
    assert result.returncode == 0, result.describe()
    rows = _metrics_rows(run_dir)
    assert [int(row["env_steps"]) for row in rows] == [512, 1024]
    assert all(float(row["policy_std"]) == pytest.approx(0.5) for row in rows)
    assert (run_dir / "summary.json").exists()
    # The guide's head has the graph twin of to_env_action, so the policy is exported.
    assert "export skipped" not in result.stderr, result.describe()
    assert (run_dir / "export" / "saved_model.pb").exists(), result.describe()


def test_broken_and_duplicate_plugins_report_documented_messages(example, tmp_path) -> None:
    broken = _write_package(
        tmp_path / "broken",
        {"pyproject.toml": BROKEN_PYPROJECT, "trpo_tf_authoring_broken/__init__.py": BROKEN_MODULE},
    )
    builtin_run = tmp_path / "builtin-run"
    # Runs of their own: started in the same second, the two refused runs would share
    # the default run directory, and one would find it locked by the other.
    broken_run, duplicate_run = tmp_path / "broken-run", tmp_path / "duplicate-run"
    try:
        _install(broken)
        listing, checked, use_broken, use_duplicate, use_builtin = _run_all(
            [
                _cli_command(["plugins"]),
                _cli_command(["plugins", "--check"]),
                _cli_command(
                    ["train", str(example / "experiment.yaml"), *FAST]
                    + ["--set", "policy.distribution=authoring_broken"]
                    + ["--run-dir", str(broken_run)]
                ),
                _cli_command(
                    ["train", str(example / "experiment.yaml"), *FAST]
                    + ["--run-dir", str(duplicate_run)]
                ),
                _cli_command(
                    ["train", str(example / "experiment.yaml"), *FAST]
                    + ["--set", "policy.distribution=diag_gaussian"]
                    + ["--set", "policy.distribution_kwargs={}"]
                    + ["--set", "trainer.total_steps=512", "--run-dir", str(builtin_run)]
                ),
            ],
            tmp_path,
        )
    finally:
        _uninstall("trpo-tf-authoring-broken", tmp_path)

    # Listing imports nothing: the broken plug-in is listed, the duplicate is marked.
    assert listing.returncode == 0, listing.describe()
    (broken_row,) = _plugin_rows(listing.stdout, "authoring_broken")
    assert "trpo-tf-authoring-broken 0.2.0" in broken_row
    duplicate_rows = _plugin_rows(listing.stdout, EXAMPLE_NAME)
    assert len(duplicate_rows) == 2
    assert all("DUPLICATE (also provided by" in row for row in duplicate_rows)
    assert all(row.endswith("uninstall one)") for row in duplicate_rows)

    # --check imports each plug-in: the broken one is marked, the others are ok, and
    # the BROKEN/DUPLICATE entries make it exit 1 with one line on stderr.
    assert checked.returncode == 1, checked.describe()
    assert "Traceback" not in checked.stderr
    assert re.search(r"plugins --check failed: \d+ entries are BROKEN or DUPLICATE", checked.stderr)
    (broken_row,) = _plugin_rows(checked.stdout, "authoring_broken")
    assert "BROKEN: ModuleNotFoundError: No module named" in broken_row
    for name in ("categorical", "diag_gaussian", "gae"):
        (row,) = _plugin_rows(checked.stdout, name)
        assert row.endswith("  ok"), row

    # Using the broken name: one line naming the package and the exception, status 2.
    assert use_broken.returncode == 2, use_broken.describe()
    assert "Traceback" not in use_broken.stderr
    assert re.search(
        r"trpo-tf: error: plug-in 'authoring_broken' \(package trpo-tf-authoring-broken 0\.2\.0\) "
        r"in group trpo_tf\.distributions failed to load: ModuleNotFoundError: "
        r"No module named 'trpo_tf_authoring_missing_dependency'",
        use_broken.stderr,
    ), use_broken.describe()

    # Using the duplicated name: both providers named, and the fix.
    assert use_duplicate.returncode == 2, use_duplicate.describe()
    assert "Traceback" not in use_duplicate.stderr
    message = re.search(r"trpo-tf: error: (.*)", use_duplicate.stderr)
    assert message, use_duplicate.describe()
    assert message.group(1).startswith(
        "distribution 'fixed_std_gaussian' in group trpo_tf.distributions is provided by 2 "
        "packages: "
    ), message.group(1)
    assert "trpo-tf-fixed-std 0.1.0 (trpo_tf_fixed_std:make_fixed_std_gaussian)" in message.group(1)
    assert "trpo-tf-authoring-broken 0.2.0 (trpo_tf_authoring_broken:make_head)" in message.group(1)
    assert message.group(1).endswith("; uninstall one of them")
    assert not broken_run.exists() and not duplicate_run.exists()  # refused runs leave none

    # Everything else keeps working while both are installed.
    assert use_builtin.returncode == 0, use_builtin.describe()
    assert len(_metrics_rows(builtin_run)) == 1

    # Uninstalled: the example is the only provider again and loads.
    after = _run(_cli_command(["plugins", "--check"]), tmp_path)
    assert not _plugin_rows(after.stdout, "authoring_broken"), after.stdout
    (row,) = _plugin_rows(after.stdout, EXAMPLE_NAME)
    assert row.endswith("  ok"), row


@pytest.fixture(scope="module")
def network_example(tmp_path_factory):
    """The guide's network package, installed for this module, uninstalled afterwards."""
    setuptools = pytest.importorskip("setuptools", reason="building a plug-in needs setuptools")
    if tuple(int(part) for part in setuptools.__version__.split(".")[:2]) < (70, 1):
        pytest.importorskip("wheel", reason="setuptools < 70.1 builds wheels with `wheel`")
    files = _network_doc_files()
    assert {"pyproject.toml", "experiment.yaml"} <= set(files), sorted(files)
    assert any(path.endswith(".py") and path.startswith("tests/") for path in files)
    root = _write_package(tmp_path_factory.mktemp("network_example"), files)
    try:
        _install(root)
        yield root
    finally:
        _uninstall(NETWORK_PACKAGE, root)


def test_network_example_is_listed_passes_its_tests_and_trains(network_example, tmp_path) -> None:
    run_dir = tmp_path / "run"
    listing, tests, trained = _run_all(
        [
            _cli_command(["plugins"]),
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
            _cli_command(
                [
                    "train",
                    str(network_example / "experiment.yaml"),
                    *FAST,
                    "--run-dir",
                    str(run_dir),
                ]
            ),
        ],
        network_example,
    )
    assert listing.returncode == 0, listing.describe()
    (row,) = _plugin_rows(listing.stdout, NETWORK_NAME)
    assert NETWORK_PACKAGE in row and "trpo_tf_layernorm_mlp:make_layernorm_mlp" in row
    assert row in listing.stdout.split("trpo_tf.networks", 1)[1]
    assert tests.returncode == 0, tests.describe()
    assert re.search(r"\b2 passed\b", tests.stdout), tests.stdout
    assert trained.returncode == 0, trained.describe()
    assert [int(row["env_steps"]) for row in _metrics_rows(run_dir)] == [512, 1024]
    assert (run_dir / "export" / "saved_model.pb").exists(), trained.describe()
    metadata = (run_dir / "export" / "metadata.json").read_text()
    assert '"policy": "layernorm_mlp"' in metadata and '"value": "layernorm_mlp"' in metadata
