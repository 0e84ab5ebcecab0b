"""A training run's life cycle: the run object, its lock, its stop requests."""
