"""Hyperparameter search with Optuna (``trpo-tf tune``; the ``tune`` extra)."""
