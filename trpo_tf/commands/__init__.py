"""The larger ``trpo-tf`` commands, one module each, called from :mod:`trpo_tf.cli`.

:mod:`~trpo_tf.commands.train` holds ``train`` and :mod:`~trpo_tf.commands.evaluate`
holds ``eval`` and ``export``; the parser, the small commands and the error handling
stay in :mod:`trpo_tf.cli`. Nothing here imports TensorFlow at module level: each
command imports it only once what can be checked without it has been checked.
"""
