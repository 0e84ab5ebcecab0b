"""A cnn policy trains on image observations, checkpoints, resumes and exports.

The export is loaded in a fresh process with TensorFlow alone and fed ``[batch, H, W,
C]`` uint8 images through the ``env_*`` signatures: its actions and values must be
the trained policy's (restored from the run directory in this process).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from trpo_tf.config import experiment_from_dict
from trpo_tf.envs.pixel_grid import PixelGridEnv
from trpo_tf.run_loading import load_run
from trpo_tf.train import train

pytestmark = pytest.mark.slow

EXPERIMENT = {
    "name": "pixel-grid-test",
    "seed": 3,
    "env": {"id": "pixel_grid", "kwargs": {"size": 4, "cell": 2}, "n_envs": 2},
    "policy": {
        "hidden": [16],
        "network": {"name": "cnn", "filters": [4, 8], "kernel_sizes": [3, 3], "strides": [1, 2]},
    },
    "value": {"hidden": [16], "epochs": 2},
    "trainer": {"total_steps": 256, "steps_per_iteration": 128},
    "eval": {"every": 1, "episodes": 2},
    "tracking": {"tensorboard": False},
}

FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    export_dir, inputs, result = sys.argv[1:4]
    model = tf.saved_model.load(export_dir)
    images = np.load(inputs)["images"]
    flat = images.reshape(len(images), -1).astype(np.float32)
    env_action = model.signatures["env_action"](observation=tf.constant(images))["action"]
    env_value = model.signatures["env_value"](observation=tf.constant(images))["value"]
    env_sample = model.signatures["env_sample"](observation=tf.constant(images))
    np.savez(
        result,
        env_action=env_action.numpy(),
        env_value=env_value.numpy(),
        env_sample=env_sample["action"].numpy(),
        env_sample_log_prob=env_sample["log_prob"].numpy(),
        action=model.action(tf.constant(flat))["action"].numpy(),
        value=model.value(tf.constant(flat))["value"].numpy(),
    )
    metadata = json.loads(model.metadata()["metadata"].numpy().decode())
    loaded = sorted(
        name
        for name in sys.modules
        if name.split(".")[0] in ("trpo_tf", "tensorflow_probability", "gymnasium")
    )
    print(json.dumps({"networks": metadata["networks"], "loaded": loaded}))
    """
)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("pixels") / "run"
    result = train(experiment_from_dict(EXPERIMENT), run_dir, quiet=True)
    assert result.env_steps == 256
    return run_dir


def _images(count: int, seed: int) -> np.ndarray:
    env = PixelGridEnv(size=4, cell=2)
    return np.stack([env.reset(seed=seed + i)[0] for i in range(count)])


def test_cnn_run_trains_and_writes_a_complete_run_directory(trained_run: Path) -> None:
    rows = (trained_run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3  # header + 2 iterations
    summary = json.loads((trained_run / "summary.json").read_text())
    assert summary["update_retraces"] == 0
    assert summary["export_skipped"] is None
    assert np.isfinite(summary["final_eval_return"])
    config = (trained_run / "config.yaml").read_text()
    assert "name: cnn" in config and "network: {}" in config


def test_export_takes_uint8_images_in_a_fresh_tensorflow_only_process(
    trained_run: Path, tmp_path: Path
) -> None:
    images = _images(16, seed=100)
    assert images.dtype == np.uint8 and images.shape == (16, 8, 8, 3)
    np.savez(tmp_path / "inputs.npz", images=images)
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            FRESH_PROCESS,
            str(trained_run / "export"),
            str(tmp_path / "inputs.npz"),
            str(tmp_path / "result.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["networks"] == {"policy": "cnn", "value": "cnn"}
    assert report["loaded"] == []  # served by TensorFlow alone: no trpo_tf, TFP or gymnasium

    _, agent = load_run(trained_run)
    flat = tf.constant(images.reshape(16, -1).astype(np.float32))
    params = agent.policy.dist_params(flat)
    expected_action = agent.policy.head.mode(params).numpy()
    expected_value = agent.value_network(flat).numpy()[:, 0]
    with np.load(tmp_path / "result.npz") as served:
        np.testing.assert_array_equal(served["env_action"], expected_action)
        np.testing.assert_array_equal(served["env_action"], served["action"])
        np.testing.assert_allclose(served["env_value"], expected_value, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(served["env_value"], served["value"])
        assert served["env_sample"].shape == (16,)
        assert set(served["env_sample"].tolist()) <= {0, 1, 2, 3}
        expected_log_prob = agent.policy.distribution(params).log_prob(served["env_sample"])
        np.testing.assert_allclose(
            served["env_sample_log_prob"], expected_log_prob.numpy(), rtol=1e-5, atol=1e-6
        )


def test_cnn_run_resumes_from_its_checkpoint(trained_run: Path, tmp_path: Path) -> None:
    """Two iterations, then two more on --resume: the checkpoint holds the cnn's weights."""
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    longer = experiment_from_dict(
        {**EXPERIMENT, "trainer": {"total_steps": 512, "steps_per_iteration": 128}}
    )
    result = train(longer, run_dir, quiet=True, resume=True)
    assert result.env_steps == 512
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["1", "2", "3", "4"]
