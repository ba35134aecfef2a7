"""Errors a user can act on. The CLI prints them as one line and exits non-zero.

This module imports nothing, so every part of metabot (bridge and hardware included) may
raise these without pulling in anything else.
"""


class MetabotError(Exception):
    """Base for errors caused by the user's input or environment, not by a bug."""

    exit_code = 2


class ConfigError(MetabotError):
    """A config file, flag or randomization spec is malformed or out of range."""


class TaskError(MetabotError):
    """An unknown task distribution or a malformed task dict."""


class CheckpointError(MetabotError):
    """A run directory or checkpoint is missing, corrupt or incompatible."""


class ArtifactError(MetabotError):
    """An ONNX artifact is truncated, edited, of an unknown format version or misused."""


class LinkError(MetabotError):
    """The serial link cannot be opened, is silent, or the peer disagrees on the protocol."""

    exit_code = 3


class SafetyError(MetabotError):
    """The safety layer stopped the robot (e-stop, link loss, limit fault)."""

    exit_code = 4


class MissingExtraError(MetabotError):
    """A feature needs an optional extra (train, sim) that is not installed."""

    def __init__(self, feature: str, extra: str):
        super().__init__(
            f"{feature} needs the '{extra}' extra: pip install 'metabot[{extra}]'"
        )
