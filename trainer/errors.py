"""Typed errors: the user's mistakes (fail fast, one line) versus faults in our code (tracebacks)."""


class ConfigError(ValueError):
    """A mistake in what the user asked for. The message is one line that says what would be valid."""


class WeightsNotFound(ConfigError):
    """Pretrained weights are not on disk and may not be downloaded here."""
