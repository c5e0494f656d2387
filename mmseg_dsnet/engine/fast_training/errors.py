"""The error fast training raises for settings and data a user can fix."""


class FastTrainingError(ValueError):
    """A config, command line or dataset that fast training cannot use;
    the message says which file or setting and what to change."""
