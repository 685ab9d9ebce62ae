"""The library's exception types: every error a user can cause is one of these, with a message
that names the input and the problem, so the CLI and the app can show it without a traceback."""


class FineVQError(ValueError):
    """Base class of every input error the library raises on purpose."""


class VideoError(FineVQError):
    """A video cannot be opened, probed or read (the message names the file and the reason)."""


class LabelError(FineVQError):
    """A label, label file or annotation value is unknown or malformed."""


class ConfigError(FineVQError):
    """A configuration file or override has an unknown key or a bad value."""


class CheckpointError(FineVQError):
    """A model folder is missing files, uses unsafe weights, or holds NaN/Inf tensors."""
