"""``python -m trpo_tf``: the ``trpo-tf`` command line."""

import sys

from trpo_tf.cli import main

sys.exit(main())
