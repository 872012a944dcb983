"""Draw the prompts in one slice view: positive points green, negative points red, the box (and
the box being dragged) yellow. Only the view showing the prompted slice shows them."""

from __future__ import annotations

import vtk

POSITIVE_COLOR = (0.2, 0.9, 0.2)
NEGATIVE_COLOR = (0.95, 0.2, 0.2)
BOX_COLOR = (1.0, 0.85, 0.1)
POINT_SIZE = 9
# A prompt is drawn when it lies within half a slice of the displayed plane.
_SAME_PLANE = 0.5


class PromptMarkers:
    """The 2D actors of one slice widget; positions come in view XY pixels."""

    def __init__(self) -> None:
        self.positive = _pointActor(POSITIVE_COLOR)
        self.negative = _pointActor(NEGATIVE_COLOR)
        self.box = _lineActor(BOX_COLOR)
        self.actors = (self.positive, self.negative, self.box)

    def update(self, positive: list, negative: list, boxCorners: tuple | None) -> None:
        """``positive``/``negative``: (x, y, z) view positions; ``boxCorners``: two (x, y, z) or None.
        z is the distance from the displayed plane in slices: prompts of other slices are hidden."""
        _setPoints(self.positive, [p for p in positive if abs(p[2]) < _SAME_PLANE])
        _setPoints(self.negative, [p for p in negative if abs(p[2]) < _SAME_PLANE])
        visibleBox = boxCorners is not None and all(abs(c[2]) < _SAME_PLANE for c in boxCorners)
        _setBox(self.box, boxCorners if visibleBox else None)


def _pointActor(color: tuple[float, float, float]) -> vtk.vtkActor2D:
    mapper = vtk.vtkPolyDataMapper2D()
    mapper.SetInputData(vtk.vtkPolyData())
    actor = vtk.vtkActor2D()
    actor.SetMapper(mapper)
    actor.GetProperty().SetColor(*color)
    actor.GetProperty().SetPointSize(POINT_SIZE)
    return actor


def _lineActor(color: tuple[float, float, float]) -> vtk.vtkActor2D:
    actor = _pointActor(color)
    actor.GetProperty().SetLineWidth(2)
    return actor


def _setPoints(actor: vtk.vtkActor2D, positions: list) -> None:
    points, vertices = vtk.vtkPoints(), vtk.vtkCellArray()
    for x, y, _z in positions:
        vertices.InsertNextCell(1)
        vertices.InsertCellPoint(points.InsertNextPoint(x, y, 0.0))
    polyData = vtk.vtkPolyData()
    polyData.SetPoints(points)
    polyData.SetVerts(vertices)
    actor.GetMapper().SetInputData(polyData)
    actor.SetVisibility(bool(positions))


def _setBox(actor: vtk.vtkActor2D, corners: tuple | None) -> None:
    points, lines = vtk.vtkPoints(), vtk.vtkCellArray()
    if corners is not None:
        (x0, y0, _), (x1, y1, _) = corners
        for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)):
            points.InsertNextPoint(x, y, 0.0)
        lines.InsertNextCell(5)
        for index in (0, 1, 2, 3, 0):
            lines.InsertCellPoint(index)
    polyData = vtk.vtkPolyData()
    polyData.SetPoints(points)
    polyData.SetLines(lines)
    actor.GetMapper().SetInputData(polyData)
    actor.SetVisibility(corners is not None)
