"""TensorFlow's C++ start-up log never reaches a trpo-tf user (trpo_tf.tf_runtime).

Each case imports TensorFlow in a fresh subprocess: the log is written to fd 2 while
``import tensorflow`` runs, which only a new process shows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from trpo_tf.tf_runtime import gpu_asked_for, is_chatter

TF_LINE_STARTS = ("WARNING: All log messages", "I0000", "W0000", "E0000")
QUIET_IMPORT = "from trpo_tf.tf_runtime import import_tensorflow_quietly as q; q()\n"


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TRPO_TF_")}
    environment.pop("CUDA_VISIBLE_DEVICES", None)
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", code],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_known_lines_are_chatter():
    lines = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796532263.019263   18094 port.cc:153] oneDNN custom operations are on. "
        "You may see slightly different numerical results",
        "I0000 00:00:1796532263.019586   18094 cudart_stub.cc:31] Could not find cuda drivers "
        "on your machine, GPU will not be used.",
        "E0000 00:00:1796532266.689889   18094 cuda_platform.cc:52] failed call to cuInit: "
        "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    ]
    lines.append("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")  # tflite export
    assert all(is_chatter(line) for line in lines)
    assert not is_chatter("E0000 00:00:1.0   1 op_kernel.cc:1] OOM when allocating tensor")
    assert not is_chatter("trpo-tf: warning: something that matters")


@pytest.mark.slow
def test_quiet_import_prints_nothing_and_tensorflow_works():
    result = _python(QUIET_IMPORT + "import tensorflow as tf; print(int(tf.constant(2) + 1))")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "3\n"
    assert result.stderr == "", result.stderr


@pytest.mark.slow
def test_plain_import_does_print_the_log():
    """The problem the quiet start solves is real on this machine (else the test above proves
    nothing): a plain import writes the absl/oneDNN block."""
    result = _python("import tensorflow")
    assert any(line.startswith(TF_LINE_STARTS) for line in result.stderr.splitlines())


@pytest.mark.slow
@pytest.mark.parametrize("how", ["env", "flag"])
def test_verbose_brings_the_raw_log_back(how, tmp_path):
    if how == "env":
        result = _python(QUIET_IMPORT, TRPO_TF_VERBOSE="1")
    else:  # through the CLI's --verbose, on a command that imports TensorFlow
        code = "from trpo_tf.cli import main; main(['--verbose', 'export', 'missing'])"
        result = _python(code)
    assert "All log messages before absl::InitializeLog()" in result.stderr, result.stderr


@pytest.mark.slow
def test_other_lines_written_while_tensorflow_loads_are_kept():
    code = textwrap.dedent(
        """
        import os
        from trpo_tf.tf_runtime import quiet_start
        with quiet_start():
            import tensorflow
            os.write(2, b"a line that matters\\n")
        print("after")
        """
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["a line that matters"]
    assert result.stdout == "after\n"


@pytest.mark.slow
def test_a_gpu_asked_for_and_missing_is_one_warning_line():
    result = _python(QUIET_IMPORT, CUDA_VISIBLE_DEVICES="0")
    if "GPU" in os.popen("nvidia-smi -L 2>/dev/null").read():
        pytest.skip("this machine has a GPU")
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("trpo-tf: warning: no GPU (CUDA_VISIBLE_DEVICES=0, but ")
    assert "running on the CPU" in lines[0]


def test_when_a_gpu_counts_as_asked_for(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpu_asked_for() is None  # hidden on purpose
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert gpu_asked_for() is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert gpu_asked_for() == "CUDA_VISIBLE_DEVICES=0,1"


def test_cli_flags_set_the_environment_for_child_processes(monkeypatch, capsys):
    from trpo_tf.cli import main

    # setenv (not delenv of an unset name, which records nothing) so that the values
    # main() sets are undone and do not reach later tests' subprocesses.
    monkeypatch.setenv("TRPO_TF_DEBUG", "0")
    monkeypatch.setenv("TRPO_TF_VERBOSE", "0")
    assert main(["experiments", "--debug", "--verbose"]) == 0
    assert os.environ["TRPO_TF_DEBUG"] == "1" and os.environ["TRPO_TF_VERBOSE"] == "1"
    monkeypatch.setenv("TRPO_TF_DEBUG", "0")
    assert main(["--debug", "experiments"]) == 0  # before the command works too
    assert os.environ["TRPO_TF_DEBUG"] == "1"


@pytest.mark.slow
def test_what_training_never_uses_is_not_imported_and_still_works_when_used():
    code = textwrap.dedent(
        """
        import sys
        from trpo_tf.tf_runtime import import_tensorflow_quietly
        import_tensorflow_quietly()
        import tensorflow_probability
        print(type(sys.modules["matplotlib.pyplot"]).__name__)
        print("pkg_resources" in sys.modules)
        import matplotlib.pyplot as plt
        print(type(plt.figure()).__name__)
        """
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    deferred, setuptools_loaded, figure = result.stdout.split()
    assert deferred == "_DeferredModule"  # Keras's import of pyplot did not run it
    if sys.version_info < (3, 12):
        assert setuptools_loaded == "False"  # TFP's distutils import took the stdlib's
    assert figure == "Figure"
