"""The Segment Editor set-up the effect tests share (imported by conftest.py and the tests; not
named conftest: tests/slicer_mrml has a conftest module too)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import slicer

REPO = Path(__file__).resolve().parents[2]
MODULE_FILE = REPO / "SAMSegment" / "SAMSegment.py"


class Editor:
    """A Segment Editor on a synthetic volume, with a Red slice view showing one axial slice."""

    def __init__(self, app, volumeArray: np.ndarray, sliceIndex: int) -> None:
        self.app, self.host, self.scene = app, app.host, slicer.mrmlScene
        self.volumeNode = slicer.util.addVolumeFromArray(volumeArray, name="SAMTest")
        self.segmentationNode = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        self.segmentationNode.CreateDefaultDisplayNodes()
        self.segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(self.volumeNode)
        self.segmentID = self.segmentationNode.GetSegmentation().AddEmptySegment("organ", "organ")
        self.node = self.scene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
        self.widget = slicer.qMRMLSegmentEditorWidget()
        self.widget.setMRMLScene(self.scene)
        self.widget.setMRMLSegmentEditorNode(self.node)
        self.widget.setSegmentationNode(self.segmentationNode)
        self.widget.setSourceVolumeNode(self.volumeNode)
        self.node.SetSelectedSegmentID(self.segmentID)
        self.red = app.layoutManager().addSliceWidget("Red", self._axialSliceNode(sliceIndex))

    def _axialSliceNode(self, k: int):
        """An axial view centred on slice ``k`` of the volume, 256 x 256 pixels."""
        sliceNode = self.scene.AddNewNodeByClass("vtkMRMLSliceNode")
        sliceNode.SetLayoutName("Red")
        _nk, nj, ni = slicer.util.arrayFromVolume(self.volumeNode).shape
        centre = self.rasOf(ni / 2 - 0.5, nj / 2 - 0.5, k)
        sliceNode.SetDimensions(256, 256, 1)
        fov = 1.25 * max(ni, nj)
        sliceNode.SetFieldOfView(fov, fov, 1.0)
        sliceToRas = sliceNode.GetSliceToRAS()
        sliceToRas.Identity()
        sliceToRas.SetElement(0, 0, -1.0)  # Slicer's axial view: x to the left (R -> L)
        for row in range(3):
            sliceToRas.SetElement(row, 3, centre[row])
        sliceNode.UpdateMatrices()
        return sliceNode

    def rasOf(self, i: float, j: float, k: float) -> list[float]:
        import vtk

        matrix = vtk.vtkMatrix4x4()
        self.volumeNode.GetIJKToRASMatrix(matrix)
        return list(matrix.MultiplyPoint((i, j, k, 1.0))[:3])

    def xyOf(self, i: float, j: float, k: float | None = None, view=None) -> tuple[int, int]:
        """Pixel position in ``view`` (Red) of voxel (i, j) of the slice shown."""
        import vtk

        view = view or self.red
        sliceNode = view.mrmlSliceNode()
        if k is None:
            k = self.shownSlice(view)
        xyToRas = vtk.vtkMatrix4x4()
        xyToRas.DeepCopy(sliceNode.GetXYToRAS())
        xyToRas.Invert()
        x, y, _z, _w = xyToRas.MultiplyPoint((*self.rasOf(i, j, k), 1.0))
        return round(x), round(y)

    def shownSlice(self, view=None) -> int:
        import vtk

        view = view or self.red
        rasToIjk = vtk.vtkMatrix4x4()
        self.volumeNode.GetRASToIJKMatrix(rasToIjk)
        centre = view.mrmlSliceNode().GetSliceToRAS()
        ras = [centre.GetElement(row, 3) for row in range(3)]
        return round(rasToIjk.MultiplyPoint((*ras, 1.0))[2])

    def activate(self):
        """Select the SAM effect in this editor, as a user does; the Python effect object."""
        self.widget.setActiveEffectByName("SAM")
        effect = self.widget.activeEffect()
        assert effect is not None, "the SAM effect is not in the Segment Editor"
        return effect.self()

    def segmentArray(self, segmentID: str | None = None) -> np.ndarray:
        return slicer.util.arrayFromSegmentBinaryLabelmap(
            self.segmentationNode, segmentID or self.segmentID, self.volumeNode
        )


def organVolume(shape=(12, 64, 64)) -> tuple[np.ndarray, np.ndarray]:
    """A bright ellipsoid in soft tissue (as the module self-test uses), and its mask."""
    nk, nj, ni = shape
    k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    organ = ((k - nk / 2) / (nk / 2.4)) ** 2 + ((j - nj / 2) / (nj / 4.5)) ** 2 + ((i - ni / 2) / (ni / 5.3)) ** 2 < 1
    return np.where(organ, 160, 20).astype(np.int16), organ
