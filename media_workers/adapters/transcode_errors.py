"""How a transcode fails: because of the video (tell its creator) or because of the machine (try again)."""
from __future__ import annotations


class TranscodeError(Exception):
    """``reason`` says what went wrong, in words fit for the creator or the operator."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class PermanentTranscodeError(TranscodeError):
    """The source cannot be turned into a ladder (damaged, undecodable): retrying will not help."""


class TransientTranscodeError(TranscodeError):
    """The machine failed (killed, disk full, out of memory): the same job may succeed on a retry."""
