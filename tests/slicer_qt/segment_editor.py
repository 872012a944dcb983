"""The Segment Editor's C++ side, as a scripted effect sees it, over the real
vtkSlicerSegmentEditorLogic from slicer-core.

Reproduced (paths in the Slicer repository):
- qSlicerSegmentEditorScriptedEffect::setPythonSource (Modules/Loadable/Segmentations/
  EditorEffects/qSlicerSegmentEditorScriptedEffect.cxx): module name = the file's parent folder
  name, class name = file base name (+ "Effect"); when ``sys.modules[moduleName]`` has no such
  class, qSlicerScriptedUtils::loadSourceAsModule (Base/QTCore/qSlicerScriptedUtils.cxx) loads
  the file itself with importlib ``spec_from_file_location`` and ``sys.modules[moduleName] =
  module``, shadowing a package of that name. The instance is set as ``slicer.<moduleName>``.
- The scripted adaptor's method order: activate()/deactivate() call the C++ base first
  (qSlicerSegmentEditorAbstractEffect::activate sets active and calls updateGUIFromMRML()),
  updateGUIFromMRML() does nothing while inactive.
- qSlicerSegmentEditorAbstractEffect (qSlicerSegmentEditorAbstractEffect.cxx): parameters are
  attributes ``<effect name>.<parameter>`` of the segment editor node (common ones without the
  prefix), setParameterDefault() only sets undefined ones, each change invokes
  EffectParameterModified; confirmCurrentSegmentVisible() asks only for a hidden selected
  segment and remembers a "No"; saveStateForUndo() and modifySelectedSegmentByLabelmap() go to
  the editor logic.
- qMRMLSegmentEditorWidget (Modules/Loadable/Segmentations/Widgets/qMRMLSegmentEditorWidget.cxx):
  updateEffectList() clones each registered effect and calls setParameterSetNode +
  setMRMLDefaults() BEFORE setupOptionsFrame() when the editor already has its node;
  setActiveEffect() deactivates the old effect and activates the new one; source volume
  changes notify every effect (sourceVolumeNodeChanged); interactor events go to the active
  effect's processInteractionEvents() and a True return aborts them for the other observers.
- What happens to events the effect lets through, from vtkMRMLSliceIntersectionWidget.cxx:
  a right press without modifier (or with Alt) starts zooming until the right release; a left
  double click without modifier maximizes the view.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from typing import Any

import fake_qt as qt
import slicer
import vtk

# ----- qSlicerSegmentEditorAbstractEffect -----


class qSlicerSegmentEditorAbstractEffect(qt.QObject):
    ModificationModeSet, ModificationModeAdd, ModificationModeRemove, ModificationModeRemoveAll = 0, 1, 2, 3
    NotConfirmed, ConfirmedWithoutDialog, ConfirmedWithDialog = 0, 1, 2  # qSlicerSegmentEditorAbstractEffect.h


class qSlicerSegmentEditorScriptedEffect(qSlicerSegmentEditorAbstractEffect):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.name = ""
        self.title = ""
        self.perSegment = False
        self.requireSegments = True
        self._self: Any = None
        self.pythonSource = ""
        self._active = False
        self._parameterSetNode = None
        self._logic = None
        self._editor: qMRMLSegmentEditorWidget | None = None
        self.optionsWidgets: list[Any] = []
        self.actors: dict[Any, list[Any]] = {}
        self._alreadyConfirmedSegmentVisible = None

    # --- loading (qSlicerSegmentEditorScriptedEffect::setPythonSource) ---

    def setPythonSource(self, path: str) -> bool:
        if not (path.endswith(".py") or path.endswith(".pyc")):
            return False
        moduleName = os.path.basename(os.path.dirname(path))
        className = os.path.splitext(os.path.basename(path))[0]
        if not className.endswith("Effect"):
            className += "Effect"
        module = sys.modules.get(moduleName)
        classToInstantiate = getattr(module, className, None) if module is not None else None
        if classToInstantiate is None:
            # qSlicerScriptedUtils::loadSourceAsModule
            spec = importlib.util.spec_from_file_location(moduleName, path)
            loaded = importlib.util.module_from_spec(spec)
            sys.modules[moduleName] = loaded
            spec.loader.exec_module(loaded)  # errors propagate (PythonQt prints them; setPythonSource fails)
            classToInstantiate = getattr(sys.modules[moduleName], className, None)
        if classToInstantiate is None:
            raise RuntimeError(
                f"Failed to load segment editor scripted effect: class {className} was not found in {path}"
            )
        # PythonQtCppAPI.instantiateClass: a class is required (a module, e.g. a submodule
        # attribute of a package, cannot be instantiated)
        if not isinstance(classToInstantiate, type):
            raise TypeError(f"{moduleName}.{className} is not a class: {classToInstantiate!r}")
        self._self = classToInstantiate(self)
        self.pythonSource = path
        setattr(slicer, moduleName, self._self)
        return True

    def self(self) -> Any:
        return self._self

    def _call(self, method: str, *args: Any) -> Any:
        """PythonCppAPI.callMethod: the Python method when the class defines it."""
        function = getattr(self._self, method, None)
        return function(*args) if function is not None else None

    def clone(self) -> qSlicerSegmentEditorScriptedEffect:
        return self._self.clone()

    def icon(self) -> Any:
        return self._call("icon")

    def helpText(self) -> str:
        return self._call("helpText") or ""

    # --- lifecycle, in the order of the C++ adaptor ---

    def setupOptionsFrame(self) -> None:
        self._call("setupOptionsFrame")

    def setMRMLDefaults(self) -> None:
        self._call("setMRMLDefaults")

    def activate(self) -> None:
        self._active = True  # qSlicerSegmentEditorAbstractEffect::activate
        self.updateGUIFromMRML()
        self._call("activate")

    def deactivate(self) -> None:
        self._active = False
        self._call("deactivate")

    def active(self) -> bool:
        return self._active

    def updateGUIFromMRML(self) -> None:
        if not self._active:
            return
        self._call("updateGUIFromMRML")

    def updateMRMLFromGUI(self) -> None:
        self._call("updateMRMLFromGUI")

    def sourceVolumeNodeChanged(self) -> None:
        self._call("sourceVolumeNodeChanged")

    def referenceGeometryChanged(self) -> None:
        self._call("referenceGeometryChanged")

    def layoutChanged(self) -> None:
        self._call("layoutChanged")

    def cleanup(self) -> None:
        self._call("cleanup")

    def processInteractionEvents(self, interactor: Any, eventId: int, viewWidget: Any) -> bool:
        result = self._call("processInteractionEvents", interactor, eventId, viewWidget)
        if not isinstance(result, bool):
            raise TypeError("processInteractionEvents is expected to return a boolean")
        return result

    def processViewNodeEvents(self, viewNode: Any, eventId: int, viewWidget: Any) -> None:
        self._call("processViewNodeEvents", viewNode, eventId, viewWidget)

    # --- C++ API the Python effect calls ---

    def setParameterSetNode(self, node: Any) -> None:
        self._parameterSetNode = node

    def parameterSetNode(self) -> Any:
        return self._parameterSetNode

    def setSegmentEditorLogic(self, logic: Any) -> None:
        self._logic = logic

    def scene(self) -> Any:
        return self._parameterSetNode.GetScene() if self._parameterSetNode else None

    def parameter(self, name: str) -> str:
        node = self._parameterSetNode
        if node is None:
            return ""
        value = node.GetAttribute(f"{self.name}.{name}")
        if value is None:
            value = node.GetAttribute(name)
        return value if value is not None else ""

    def integerParameter(self, name: str) -> int:
        try:
            return int(self.parameter(name))
        except ValueError:
            return 0

    def parameterDefined(self, name: str) -> bool:
        return self.commonParameterDefined(f"{self.name}.{name}")

    def commonParameterDefined(self, name: str) -> bool:
        node = self._parameterSetNode
        return bool(node is not None and node.GetAttribute(name))

    def setParameter(self, name: str, value: Any) -> None:
        self.setCommonParameter(f"{self.name}.{name}", value)

    def setParameterDefault(self, name: str, value: Any) -> None:
        if not self.parameterDefined(name):
            self.setParameter(name, value)

    def setCommonParameter(self, name: str, value: Any) -> None:
        node = self._parameterSetNode
        if node is None:
            raise AssertionError(f"Invalid segment editor parameter set node set to effect {self.name}")
        value = str(value)
        old = node.GetAttribute(name)
        if (old is None and value == "") or value == old:
            return
        disabled = node.GetDisableModifiedEvent()
        node.SetDisableModifiedEvent(1)
        node.SetAttribute(name, value)
        node.SetDisableModifiedEvent(disabled)
        node.InvokeCustomModifiedEvent(slicer.vtkMRMLSegmentEditorNode.EffectParameterModified)

    def confirmCurrentSegmentVisible(self) -> int:
        node = self._parameterSetNode
        if node is None or node.GetSegmentationNode() is None:
            return self.ConfirmedWithoutDialog
        segmentationNode, segmentID = node.GetSegmentationNode(), node.GetSelectedSegmentID()
        if not segmentID:
            return self.ConfirmedWithoutDialog
        segment = segmentationNode.GetSegmentation().GetSegment(segmentID)
        if self._alreadyConfirmedSegmentVisible is segment and segment is not None:
            return self.ConfirmedWithoutDialog
        for index in range(segmentationNode.GetNumberOfDisplayNodes()):
            display = segmentationNode.GetNthDisplayNode(index)
            if display and display.GetVisibility() and display.GetSegmentVisibility(segmentID):
                return self.ConfirmedWithoutDialog
        reply = self._editor.segmentVisibilityReplies.popleft() if self._editor else "cancel"
        self._editor.segmentVisibilityQuestions += 1
        if reply == "cancel":
            return self.NotConfirmed
        if reply == "yes":
            display = segmentationNode.GetDisplayNode()
            display.SetVisibility(True)
            display.SetSegmentVisibility(segmentID, True)
        else:
            self._alreadyConfirmedSegmentVisible = segment
        return self.ConfirmedWithDialog

    def saveStateForUndo(self) -> None:
        self._logic.SaveStateForUndo()  # qMRMLSegmentEditorWidget::saveStateForUndo

    def modifySelectedSegmentByLabelmap(
        self, labelmap: Any, mode: int, extent: Any = None, bypassMasking: bool = False
    ) -> None:
        node = self._parameterSetNode
        extent = list(extent) if extent is not None else [0, -1, 0, -1, 0, -1]
        self._logic.ModifySegmentByLabelmap(
            node.GetSegmentationNode(),
            node.GetSelectedSegmentID() or "",
            labelmap,
            _logicMode(mode),  # static_cast in the C++
            extent,
            self.perSegment,
            bypassMasking,
        )

    def sourceVolumeImageData(self) -> Any:
        if self._logic is None or not self._logic.UpdateAlignedSourceVolume():
            return None
        return self._logic.GetAlignedSourceVolume()

    def addOptionsWidget(self, widget: Any) -> None:
        self.optionsWidgets.append(widget)

    def addLabeledOptionsWidget(self, label: str, widget: Any) -> None:
        self.optionsWidgets.append(widget)

    def addActor2D(self, viewWidget: Any, actor: Any) -> None:
        viewWidget.renderer.AddViewProp(actor)
        self.actors.setdefault(viewWidget, []).append(actor)

    def removeActor2D(self, viewWidget: Any, actor: Any) -> None:
        viewWidget.renderer.RemoveViewProp(actor)
        self.actors.get(viewWidget, []).remove(actor)

    def scheduleRender(self, viewWidget: Any) -> None:
        viewWidget.sliceView().scheduleRender()

    def selectEffect(self, name: str) -> None:
        self._editor.setActiveEffectByName(name)

    def optionWidgets(self) -> list[Any]:
        """Every widget of the options frame (test helper)."""
        found = []
        for widget in self.optionsWidgets:
            found.append(widget)
            if isinstance(widget, qt.QLayout):
                found.extend(widget.widgets())
        return found


def _logicMode(mode: int) -> Any:
    logic = slicer.vtkSlicerSegmentEditorLogic
    modes = [
        logic.ModificationModeSet,
        logic.ModificationModeAdd,
        logic.ModificationModeRemove,
        logic.ModificationModeRemoveAll,
    ]
    return next(m for m in modes if int(m) == int(mode))


class qSlicerSegmentEditorEffectFactory(qt.QObject):
    effectRegistered = qt.Signal(str)
    _instance: qSlicerSegmentEditorEffectFactory | None = None

    def __init__(self) -> None:
        super().__init__()
        self.registeredEffects: list[qSlicerSegmentEditorScriptedEffect] = []

    @classmethod
    def instance(cls) -> qSlicerSegmentEditorEffectFactory:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    @classmethod
    def reset(cls) -> None:
        cls._instance = None

    def registerEffect(self, effect: qSlicerSegmentEditorScriptedEffect) -> bool:
        if any(e.name == effect.name for e in self.registeredEffects):
            return False
        self.registeredEffects.append(effect)
        self.effectRegistered.emit(effect.name)
        return True


# ----- qMRMLSegmentEditorWidget -----

_INTERACTOR_EVENTS = {
    vtk.vtkCommand.LeftButtonPressEvent,
    vtk.vtkCommand.LeftButtonReleaseEvent,
    vtk.vtkCommand.LeftButtonDoubleClickEvent,
    vtk.vtkCommand.RightButtonPressEvent,
    vtk.vtkCommand.RightButtonReleaseEvent,
    vtk.vtkCommand.MouseMoveEvent,
    vtk.vtkCommand.KeyPressEvent,
}


class qMRMLSegmentEditorWidget(qt.QWidget):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.logic = slicer.vtkSlicerSegmentEditorLogic()
        self.logic.SetMRMLApplicationLogic(slicer.app.applicationLogic())
        self.effects: list[qSlicerSegmentEditorScriptedEffect] = []
        self._activeEffect: qSlicerSegmentEditorScriptedEffect | None = None
        self._node = None
        self._sourceVolumeNode = None
        self._observers: list[tuple[Any, int]] = []
        self.segmentVisibilityReplies: Any = __import__("collections").deque()
        self.segmentVisibilityQuestions = 0
        self.zooming: dict[Any, bool] = {}  # slice widget -> the slice intersection widget is zooming
        factory = qSlicerSegmentEditorEffectFactory.instance()
        factory.effectRegistered.connect(self._onEffectRegistered)
        self.updateEffectList()

    def _onEffectRegistered(self, name: str) -> None:
        self.updateEffectList()

    def setMRMLScene(self, scene: Any) -> None:
        self.logic.SetMRMLScene(scene)

    def mrmlSegmentEditorNode(self) -> Any:
        return self._node

    def setMRMLSegmentEditorNode(self, node: Any) -> None:
        """... then initializeParameterSetNode(): every effect gets the node and its defaults."""
        self._node = node
        self.logic.SetSegmentEditorNode(node)
        if node is None:
            return
        for effect in self.effects:
            effect.setParameterSetNode(node)
            effect.setMRMLDefaults()
            self._observeParameters(effect)

    def _observeParameters(self, effect: qSlicerSegmentEditorScriptedEffect) -> None:
        tag = self._node.AddObserver(
            slicer.vtkMRMLSegmentEditorNode.EffectParameterModified, lambda caller, event: effect.updateGUIFromMRML()
        )
        self._observers.append((self._node, tag))

    def updateEffectList(self) -> None:
        known = {effect.name for effect in self.effects}
        for registered in qSlicerSegmentEditorEffectFactory.instance().registeredEffects:
            if registered.name in known:
                continue
            effect = registered.clone()  # qSlicerSegmentEditorEffectFactory::copyEffects
            effect._editor = self
            effect.setSegmentEditorLogic(self.logic)
            if self._node is not None:
                effect.setParameterSetNode(self._node)
                effect.setMRMLDefaults()  # before setupOptionsFrame()
                self._observeParameters(effect)
            effect.setupOptionsFrame()
            self.effects.append(effect)

    def setSegmentationNode(self, node: Any) -> None:
        if self.logic.GetSegmentationNode() is node:
            return
        self.logic.SetSegmentationNode(node)
        self.setActiveEffect(None)

    def setSourceVolumeNode(self, node: Any) -> None:
        self.logic.SetSourceVolumeNode(node)
        self.logic.TrivialSetSourceRepresentationToBinaryLabelmap()
        self.logic.ResetModifierLabelmapToDefault()
        if node is not self._sourceVolumeNode:  # onSourceVolumeNodeChanged
            self._sourceVolumeNode = node
            for effect in self.effects:
                effect.sourceVolumeNodeChanged()

    def effectByName(self, name: str) -> qSlicerSegmentEditorScriptedEffect | None:
        return next((effect for effect in self.effects if effect.name == name), None)

    def activeEffect(self) -> qSlicerSegmentEditorScriptedEffect | None:
        return self._activeEffect

    def setActiveEffectByName(self, name: str) -> None:
        self.setActiveEffect(self.effectByName(name))

    def setActiveEffect(self, effect: qSlicerSegmentEditorScriptedEffect | None) -> None:
        """setActiveEffect sets the node's active effect name; updateEffectsSectionFromMRML then
        deactivates the previous effect and activates the new one."""
        if self._node is None:
            return
        self._node.SetActiveEffectName(effect.name if effect else "")
        if effect is self._activeEffect:
            return
        if self._activeEffect is not None:
            self._activeEffect.deactivate()
        self._activeEffect = effect
        if effect is not None:
            effect.activate()

    def saveStateForUndo(self) -> None:
        self.logic.SaveStateForUndo()

    def undo(self) -> None:
        self.logic.Undo()

    # --- mouse ---

    def interact(
        self,
        sliceWidget: Any,
        eventId: int,
        xy: tuple[int, int],
        ctrl: bool = False,
        shift: bool = False,
        alt: bool = False,
    ) -> bool:
        """Deliver one interactor event as qMRMLSegmentEditorWidget::processEvents does; returns
        whether the effect aborted it. Unaborted events reach the slice intersection widget."""
        interactor = sliceWidget.interactor
        interactor.SetEventInformation(int(xy[0]), int(xy[1]), int(ctrl), int(shift))
        interactor.SetAltKey(int(alt))
        aborted = False
        if self._activeEffect is not None:
            aborted = self._activeEffect.processInteractionEvents(interactor, eventId, sliceWidget)
        if not aborted:
            self._sliceIntersectionWidget(sliceWidget, eventId, ctrl, shift, alt)
        return aborted

    def _sliceIntersectionWidget(self, sliceWidget: Any, eventId: int, ctrl: bool, shift: bool, alt: bool) -> None:
        noModifier = not (ctrl or shift or alt)
        if eventId == vtk.vtkCommand.RightButtonPressEvent and (noModifier or (alt and not ctrl and not shift)):
            self.zooming[sliceWidget] = True
        elif eventId == vtk.vtkCommand.RightButtonReleaseEvent:
            self.zooming[sliceWidget] = False
        elif eventId == vtk.vtkCommand.LeftButtonDoubleClickEvent and noModifier:
            slicer.app.layoutManager().maximizedView = sliceWidget.name

    def click(self, sliceWidget: Any, xy: tuple[int, int], button: str = "left", **modifiers: bool) -> list[bool]:
        """A press and release at ``xy``; the abort flags of both."""
        press, release = {
            "left": (vtk.vtkCommand.LeftButtonPressEvent, vtk.vtkCommand.LeftButtonReleaseEvent),
            "right": (vtk.vtkCommand.RightButtonPressEvent, vtk.vtkCommand.RightButtonReleaseEvent),
        }[button]
        return [
            self.interact(sliceWidget, press, xy, **modifiers),
            self.interact(sliceWidget, release, xy, **modifiers),
        ]

    def doubleClick(self, sliceWidget: Any, xy: tuple[int, int]) -> list[bool]:
        """What Qt delivers for a quick second click: press, release, double click, release."""
        return [
            self.interact(sliceWidget, vtk.vtkCommand.LeftButtonPressEvent, xy),
            self.interact(sliceWidget, vtk.vtkCommand.LeftButtonReleaseEvent, xy),
            self.interact(sliceWidget, vtk.vtkCommand.LeftButtonDoubleClickEvent, xy),
            self.interact(sliceWidget, vtk.vtkCommand.LeftButtonReleaseEvent, xy),
        ]

    def drag(self, sliceWidget: Any, start: tuple[int, int], end: tuple[int, int], steps: int = 4) -> None:
        self.interact(sliceWidget, vtk.vtkCommand.LeftButtonPressEvent, start)
        for step in range(1, steps + 1):
            xy = tuple(round(a + (b - a) * step / steps) for a, b in zip(start, end))
            self.interact(sliceWidget, vtk.vtkCommand.MouseMoveEvent, xy)
        self.interact(sliceWidget, vtk.vtkCommand.LeftButtonReleaseEvent, end)

    def close(self) -> None:
        """~qMRMLSegmentEditorWidgetPrivate: remove observers, cleanup() every effect."""
        self.setActiveEffect(None)
        for node, tag in self._observers:
            node.RemoveObserver(tag)
        self._observers = []
        for effect in self.effects:
            effect.cleanup()
        qSlicerSegmentEditorEffectFactory.instance().effectRegistered.disconnect(self._onEffectRegistered)


# ----- the Python modules effects import -----


def makeEffectsPythonQt() -> types.ModuleType:
    module = types.ModuleType("qSlicerSegmentationsEditorEffectsPythonQt")
    module.qSlicerSegmentEditorScriptedEffect = qSlicerSegmentEditorScriptedEffect
    module.qSlicerSegmentEditorAbstractEffect = qSlicerSegmentEditorAbstractEffect
    return module


def makeSegmentEditorEffects() -> types.ModuleType:
    """SegmentEditorEffects (Modules/Loadable/Segmentations/EditorEffects/Python/SegmentEditorEffects/
    AbstractScriptedSegmentEditorEffect.py): the abstract effect as Slicer ships it."""
    package = types.ModuleType("SegmentEditorEffects")
    package.__path__ = []

    class AbstractScriptedSegmentEditorEffect:
        def __init__(self, scriptedEffect: Any) -> None:
            self.scriptedEffect = scriptedEffect

        def register(self) -> None:
            slicer.qSlicerSegmentEditorEffectFactory.instance().registerEffect(self.scriptedEffect)

        def cleanup(self) -> None:
            pass

    AbstractScriptedSegmentEditorEffect.__module__ = "SegmentEditorEffects.AbstractScriptedSegmentEditorEffect"
    package.AbstractScriptedSegmentEditorEffect = AbstractScriptedSegmentEditorEffect
    submodule = types.ModuleType("SegmentEditorEffects.AbstractScriptedSegmentEditorEffect")
    submodule.AbstractScriptedSegmentEditorEffect = AbstractScriptedSegmentEditorEffect
    submodule.__all__ = ["AbstractScriptedSegmentEditorEffect"]
    package.__all__ = ["AbstractScriptedSegmentEditorEffect"]
    return package, submodule
