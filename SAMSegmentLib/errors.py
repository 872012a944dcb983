"""Errors the engine raises; every one carries a message a clinician can act on."""

from __future__ import annotations


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
    """The device ran out of memory; after a GPU ran out, the caller may retry on the CPU."""

    @classmethod
    def on(cls, device_type: str, detail: str) -> InferenceOutOfMemoryError:
        """The error for ``device_type`` ("cpu", "cuda", "mps"), with advice that can help there:
        switching to the CPU only helps when a GPU ran out; on the CPU it is the computer's memory."""
        if device_type == "cpu":
            what, advice = "The computer", "Close other programs to free memory, or crop the volume"
        else:
            what, advice = f"The {device_type.upper()}", "Close other GPU programs or switch the device to CPU"
        return cls(f"{what} ran out of memory while segmenting ({detail}). {advice}; nothing was changed.")


class CancelledError(SAMSegmentError):
    """The user cancelled a running request."""
