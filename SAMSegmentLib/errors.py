"""Errors the engine raises; every one carries a message a clinician can act on."""


class SAMSegmentError(Exception):
    """Base class of every error the engine raises on purpose."""


class InputImageError(SAMSegmentError):
    """The image is not a usable 3D scalar volume (wrong dimension, empty, NaN, constant)."""


class PromptError(SAMSegmentError):
    """A prompt is outside the slice or of a kind the model cannot take."""


class CheckpointError(SAMSegmentError):
    """A checkpoint is missing, truncated, corrupt or belongs to another model."""


class ModelUnavailableError(SAMSegmentError):
    """A model's Python package is not installed."""


class InferenceOutOfMemoryError(SAMSegmentError):
    """The device ran out of memory; the caller may retry on the CPU."""


class CancelledError(SAMSegmentError):
    """The user cancelled a running request."""
