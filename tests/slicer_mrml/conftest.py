"""Real MRML from the slicer-core wheel for the Slicer glue tests (skipped without slicer-core)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

if importlib.util.find_spec("slicer") is None:
    collect_ignore_glob = ["test_*.py"]
else:
    # The glue package lives inside the Slicer module folder, as Slicer installs it.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "SAMSegment"))
    import slicer


@pytest.fixture
def scene():
    """An empty scene that knows the segmentation node classes; also ``slicer.mrmlScene`` and
    ``slicer.modules.segmentations.logic()`` for ``slicer.util`` helpers."""
    mrmlScene = slicer.vtkMRMLScene()
    segmentationsLogic = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentationsLogic.SetMRMLScene(mrmlScene)
    previous = getattr(slicer, "mrmlScene", None), getattr(slicer, "modules", None)
    slicer.mrmlScene = mrmlScene
    slicer.modules = type("Modules", (), {"segmentations": type("Module", (), {"logic": lambda: segmentationsLogic})})
    yield mrmlScene
    slicer.mrmlScene, slicer.modules = previous
    mrmlScene.Clear(True)
