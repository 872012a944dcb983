"""The SAM Segment Editor effect (Qt side): options, mouse interaction, prompt markers, dependencies.

qSlicerSegmentEditorScriptedEffect::setPythonSource looks for the class ``SegmentEditorEffect`` in
``sys.modules["SAMSegmentEffect"]`` (the effect file's folder name) and, when it is missing, loads
the effect file itself under that name, which hides this package from the effect's own imports.
So SAMSegment.registerEffect() imports this package first, and the package exports the class (as
the Slicer extension template's effect package does with ``from .SegmentEditorEffect import *``).
Importing it never imports torch.
"""

from .SegmentEditorEffect import SegmentEditorEffect

__all__ = ["SegmentEditorEffect"]
