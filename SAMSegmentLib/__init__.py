"""SAMSegment's engine: Segment Anything models for 3D medical volumes, free of any Slicer import."""

__version__ = "0.1.0"
