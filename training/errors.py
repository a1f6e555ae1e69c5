"""Errors that `djserve train` and `djserve evaluate` print as one line."""


class TrainingError(Exception):
    """A run that cannot start or finish; the message names the cause."""


class DatasetError(TrainingError):
    """A dataset that is missing, unreadable or not what the trainer needs."""
