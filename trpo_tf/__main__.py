"""``python -m trpo_tf``: the ``trpo-tf`` command line."""

from trpo_tf.cli import run

run()
