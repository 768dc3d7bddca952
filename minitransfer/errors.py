"""The exceptions minitransfer raises at its boundaries (files, configs, user data, CLI arguments).

Each message says what is wrong and what to do; the CLI prints it without a traceback.
"""


class MiniTransferError(Exception):
    """Base class: a problem the user can fix, reported in one clear message."""


class CheckpointError(MiniTransferError):
    """A model directory or weights file that cannot be used (missing, truncated, wrong kind, wrong shape)."""


class ConfigError(MiniTransferError):
    """A config.json or keyword override that does not describe a supported model."""


class InputError(MiniTransferError):
    """User data that cannot be fed to a model (empty, too long, wrong shape, unknown label, missing column)."""


class TrainingError(MiniTransferError):
    """A run that cannot go on (a non-finite loss or gradient, an output folder another run holds)."""
