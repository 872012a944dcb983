"""Segmentations written by the engine (``samsegment segment``) open in Slicer on the right grid."""

from __future__ import annotations

import numpy as np
import pytest

from SAMSegmentLib.imageio import Segment, write_segmentation
from SAMSegmentLib.volume import Volume
from SAMSegmentMRML.geometry import RAS_TO_LPS, arrayToRasMatrix
from SAMSegmentMRML.segment_writer import segmentMaskOnGrid

pytestmark = pytest.mark.slicer


@pytest.mark.parametrize(
    "direction",
    [np.diag([1.0, -1.0, 1.0]), np.array([[0.0, 0.6, 0.8], [0.0, 0.8, -0.6], [-1.0, 0.0, 0.0]])],
    ids=["left-handed", "oblique"],
)
def test_engine_seg_nrrd_loads_with_slicers_storage_node(scene, tmp_path, direction):
    volume = Volume(
        np.random.default_rng(3).normal(size=(7, 12, 10)),
        spacing=(0.5, 0.75, 3.0),
        origin=(-20.0, 15.0, 40.0),
        direction=direction,
    )
    liver = np.zeros(volume.array.shape, bool)
    liver[1:4, 2:6, 3:9] = True
    spleen = np.zeros(volume.array.shape, bool)
    spleen[5, 8:11, 0:2] = True
    path = write_segmentation(
        tmp_path / "result.seg.nrrd", volume, [Segment("liver", liver), Segment("spleen", spleen)]
    )

    segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storageNode = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storageNode.SetFileName(str(path))
    assert storageNode.ReadData(segmentationNode)
    segmentation = segmentationNode.GetSegmentation()
    names = [segmentation.GetNthSegment(n).GetName() for n in range(segmentation.GetNumberOfSegments())]
    assert names == ["liver", "spleen"]

    # The file carries no reference geometry parameter; its labelmap layer holds the grid.
    grid = segmentation.GetSegment(segmentation.GetSegmentIDs()[0]).GetRepresentation("Binary labelmap")
    ni, nj, nk = volume.shape_ijk
    extent = grid.GetExtent()
    assert (extent[1] - extent[0] + 1, extent[3] - extent[2] + 1, extent[5] - extent[4] + 1) == (ni, nj, nk)
    arrayToRas = arrayToRasMatrix(grid)
    assert np.linalg.norm(arrayToRas[:3, :3], axis=0) == pytest.approx(volume.spacing)
    # Every voxel of each segment sits where the engine put it, in RAS.
    for segmentID, mask in zip(segmentation.GetSegmentIDs(), (liver, spleen), strict=True):
        loaded = segmentMaskOnGrid(segmentationNode, segmentID, grid)
        kji = np.argwhere(loaded)
        ras = (arrayToRas @ np.c_[kji[:, ::-1], np.ones(len(kji))].T).T[:, :3]
        expected = volume.ijk_to_physical(np.argwhere(mask)[:, ::-1]) @ RAS_TO_LPS.T
        order = lambda points: points[np.lexsort(np.round(points, 3).T)]  # noqa: E731
        np.testing.assert_allclose(order(ras), order(expected), atol=1e-4)
