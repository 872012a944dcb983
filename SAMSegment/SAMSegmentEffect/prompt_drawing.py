"""The prompts drawn in the slice views: markers per view, added to the effect's renderers."""

import slicer

from SAMSegmentEffect.prompt_markers import PromptMarkers
from SAMSegmentMRML.slice_views import SlicePosition, sliceToXy


class PromptDrawing:
    def __init__(self, scriptedEffect):
        self.scriptedEffect = scriptedEffect
        self.markers = {}  # slice widget -> PromptMarkers

    def drawAll(self, prompts, arrayToRas):
        layoutManager = slicer.app.layoutManager()
        for name in layoutManager.sliceViewNames():
            self.draw(layoutManager.sliceWidget(name), prompts, arrayToRas)

    def draw(self, sliceWidget, prompts, arrayToRas, boxCorners=None):
        """Show ``prompts`` in one view; ``boxCorners`` (view x, y, z) replace the box while dragging."""
        sliceNode = sliceWidget.sliceLogic().GetSliceNode()
        positive, negative = [], []
        if not prompts.empty:
            for point in prompts.points:
                xyz = sliceToXy(sliceNode, SlicePosition(prompts.axis, prompts.index, point.xy), arrayToRas)
                (positive if point.positive else negative).append(xyz)
            if prompts.box is not None and boxCorners is None:
                x0, y0, x1, y1 = prompts.box
                boxCorners = tuple(
                    sliceToXy(sliceNode, SlicePosition(prompts.axis, prompts.index, corner), arrayToRas)
                    for corner in ((x0, y0), (x1, y1))
                )
        self._markersFor(sliceWidget).update(positive, negative, boxCorners)
        sliceWidget.sliceView().scheduleRender()

    def drawRubberBand(self, sliceWidget, prompts, arrayToRas, start, end):
        self.draw(sliceWidget, prompts, arrayToRas, boxCorners=((start[0], start[1], 0.0), (end[0], end[1], 0.0)))

    def clear(self):
        for sliceWidget, markers in self.markers.items():
            for actor in markers.actors:
                self.scriptedEffect.removeActor2D(sliceWidget, actor)
        self.markers = {}

    def _markersFor(self, sliceWidget):
        if sliceWidget not in self.markers:
            markers = PromptMarkers()
            for actor in markers.actors:
                self.scriptedEffect.addActor2D(sliceWidget, actor)
            self.markers[sliceWidget] = markers
        return self.markers[sliceWidget]
