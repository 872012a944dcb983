"""What the slicer-core wheel lacks of Slicer's Python environment: ``slicer.app``, scripted module
loading, ``slicer.i18n``, ``slicer.ScriptedLoadableModule``, a layout manager with slice widgets,
node selectors, and message boxes that answer scripted replies.

slicer-core gives real MRML, real ``slicer.util`` and the real ``vtkSlicerSegmentEditorLogic``;
everything here is installed around it by conftest.py. Each behaviour cites the Slicer source it
reproduces (paths in the Slicer repository).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
import unittest
from collections import deque
from collections.abc import Callable
from typing import Any

import fake_qt as qt
import host_loop
import slicer
import vtk

# ----- slicer.i18n (Base/Python/slicer/i18n.py): tr() returns the text; translate(context, text) too -----


def makeI18n() -> types.ModuleType:
    module = types.ModuleType("slicer.i18n")
    module.tr = lambda text: text
    module.translate = lambda context, text: text
    module.getContext = lambda sourceFile: os.path.splitext(os.path.basename(sourceFile))[0]
    return module


# ----- message boxes: slicer.util's dialogs answer what the test scripted -----


class Dialogs:
    """Replaces slicer.util's modal dialogs (Base/Python/slicer/util.py: confirmOkCancelDisplay,
    confirmYesNoDisplay, errorDisplay, ...). A test queues answers; an unexpected question fails."""

    def __init__(self) -> None:
        self.answers: deque[bool] = deque()
        self.asked: list[str] = []
        self.errors: list[str] = []
        self.infos: list[str] = []

    def answer(self, *replies: bool) -> None:
        self.answers.extend(replies)

    def _confirm(self, text: str, *args: Any, **kwargs: Any) -> bool:
        self.asked.append(text)
        if not self.answers:
            raise AssertionError(f"Unexpected question: {text}")
        return self.answers.popleft()

    def _error(self, text: str, *args: Any, **kwargs: Any) -> None:
        self.errors.append(text)

    def _info(self, text: str, *args: Any, **kwargs: Any) -> None:
        self.infos.append(text)

    def install(self, monkeypatch: Any) -> None:
        for name in ("confirmOkCancelDisplay", "confirmYesNoDisplay"):
            monkeypatch.setattr(slicer.util, name, self._confirm)
        monkeypatch.setattr(slicer.util, "errorDisplay", self._error)
        monkeypatch.setattr(slicer.util, "warningDisplay", self._info)
        monkeypatch.setattr(slicer.util, "infoDisplay", self._info)
        monkeypatch.setattr(slicer.util, "delayDisplay", lambda text, *a, **k: self.infos.append(text))


# ----- views: a slice widget over a real vtkMRMLSliceNode -----


class SliceView:
    def __init__(self) -> None:
        self.renderRequests = 0

    def scheduleRender(self) -> None:
        self.renderRequests += 1

    def forceRender(self) -> None:
        self.renderRequests += 1


class SliceLogic:
    def __init__(self, sliceNode: Any) -> None:
        self._sliceNode = sliceNode

    def GetSliceNode(self) -> Any:
        return self._sliceNode


class SliceWidget(qt.QWidget):
    """qMRMLSliceWidget as an effect sees it: className, sliceLogic().GetSliceNode(), sliceView(),
    a renderer for the effect's 2D actors, and the interactor its events come from."""

    def __init__(self, name: str, sliceNode: Any) -> None:
        super().__init__()
        self.name = name
        self._sliceLogic = SliceLogic(sliceNode)
        self._sliceView = SliceView()
        self.renderer = vtk.vtkRenderer()
        self.interactor = vtk.vtkGenericRenderWindowInteractor()  # no window: never opens a display

    def className(self) -> str:
        return "qMRMLSliceWidget"

    def sliceLogic(self) -> SliceLogic:
        return self._sliceLogic

    def mrmlSliceNode(self) -> Any:
        return self._sliceLogic.GetSliceNode()

    def sliceView(self) -> SliceView:
        return self._sliceView


class LayoutManager:
    """qSlicerLayoutManager: sliceViewNames(), sliceWidget(name), and the maximized view that a
    double click asks for (vtkMRMLSliceIntersectionWidget::ProcessMaximizeView)."""

    def __init__(self) -> None:
        self.sliceWidgets: dict[str, SliceWidget] = {}
        self.maximizedView: str | None = None

    def addSliceWidget(self, name: str, sliceNode: Any) -> SliceWidget:
        widget = SliceWidget(name, sliceNode)
        self.sliceWidgets[name] = widget
        return widget

    def sliceViewNames(self) -> list[str]:
        return list(self.sliceWidgets)

    def sliceWidget(self, name: str) -> SliceWidget | None:
        return self.sliceWidgets.get(name)


# ----- scripted modules (Base/QTGUI/qSlicerScriptedLoadableModule*.cxx) -----


class ModuleParent(qt.QObject):
    """The C++ qSlicerScriptedLoadableModule a Python module class decorates (``self.parent``)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.title = ""
        self.categories: list[str] = []
        self.dependencies: list[str] = []
        self.contributors: list[str] = []
        self.helpText = ""
        self.acknowledgementText = ""
        self.hidden = False
        self.icon = qt.QIcon()


class qSlicerScriptedLoadableModule(ModuleParent):
    def __init__(self, path: str, app: Application) -> None:
        super().__init__(path)
        self.name = os.path.splitext(os.path.basename(path))[0]
        self._app = app
        self._widget: qSlicerScriptedLoadableModuleWidget | None = None
        self.pythonModule: types.ModuleType | None = None
        self.instance: Any = None

    def widgetRepresentation(self) -> qSlicerScriptedLoadableModuleWidget:
        """Created on first use, then ``setup()`` runs (qSlicerScriptedLoadableModuleWidget::setup)."""
        if self._widget is None:
            widget = qSlicerScriptedLoadableModuleWidget()
            cls = getattr(self.pythonModule, self.name + "Widget")
            widget._self = cls(widget)
            widget._self.setup()
            self._widget = widget
        return self._widget

    def logic(self) -> None:
        return None  # scripted modules have no C++ logic; slicer.util.getModuleLogic asks the widget


class qSlicerScriptedLoadableModuleWidget(qt.QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.setLayout(qt.QVBoxLayout())
        self._self: Any = None

    def self(self) -> Any:
        return self._self

    def enter(self) -> None:
        if hasattr(self._self, "enter"):
            self._self.enter()

    def exit(self) -> None:
        if hasattr(self._self, "exit"):
            self._self.exit()


class ModuleManager(qt.QObject):
    moduleAboutToBeUnloaded = qt.Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.modules: dict[str, qSlicerScriptedLoadableModule] = {}

    def module(self, name: str) -> Any:
        return self.modules.get(name)

    def factoryManager(self) -> Any:
        manager = types.SimpleNamespace()
        manager.loadedModuleNames = lambda: list(self.modules)
        return manager


class Application(qt.QObject):
    """slicer.app (qSlicerApplication) with what SAMSegment calls."""

    startupCompleted = qt.Signal()
    aboutToQuit = qt.Signal()

    def __init__(self, majorVersion: int = 5, minorVersion: int = 10) -> None:
        super().__init__()
        self.majorVersion, self.minorVersion, self.patchVersion = majorVersion, minorVersion, 0
        self.applicationName = "Slicer"
        self.documentationBaseUrl = f"https://slicer.readthedocs.io/en/{majorVersion}.{minorVersion}/"
        self._applicationLogic = slicer.vtkSlicerApplicationLogic()
        self._layoutManager = LayoutManager()
        self._moduleManager = ModuleManager()

    def applicationLogic(self) -> Any:
        return self._applicationLogic

    def layoutManager(self) -> LayoutManager:
        return self._layoutManager

    def moduleManager(self) -> ModuleManager:
        return self._moduleManager

    def mainWindow(self) -> None:
        return None

    def testingEnabled(self) -> bool:
        return False

    def commandOptions(self) -> Any:
        return types.SimpleNamespace(noMainWindow=True)

    def moduleDocumentationUrl(self, moduleName: str) -> str:
        """qSlicerCoreApplication::moduleDocumentationUrl."""
        return f"{self.documentationBaseUrl}user_guide/modules/{moduleName.lower()}.html"

    def processEvents(self, *args: Any) -> None:
        host_loop.current().processEvents()

    def quit(self) -> None:
        self.aboutToQuit.emit()

    # --- loading a scripted module the way Slicer does at startup ---

    def loadScriptedModule(self, path: str) -> qSlicerScriptedLoadableModule:
        """qSlicerScriptedLoadableModule::setPythonSource: the module's folder is on sys.path
        (qSlicerScriptedUtils::importModulePythonExtensions), the file is loaded as a module named
        after it (qSlicerScriptedUtils::loadSourceAsModule) and ``<Name>(parent)`` is instantiated."""
        module = qSlicerScriptedLoadableModule(path, self)
        folder = os.path.dirname(path)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        spec = importlib.util.spec_from_file_location(module.name, path)
        pythonModule = importlib.util.module_from_spec(spec)
        sys.modules[module.name] = pythonModule
        spec.loader.exec_module(pythonModule)
        module.pythonModule = pythonModule
        module.instance = getattr(pythonModule, module.name)(module)
        self._moduleManager.modules[module.name] = module
        setattr(slicer.modules, module.name.lower(), module)
        return module


# ----- node selectors used by the module panels -----


class qMRMLWidget(qt.QWidget):
    def setMRMLScene(self, scene: Any) -> None:
        self.scene = scene


class qMRMLNodeComboBox(qMRMLWidget):
    currentNodeChanged = qt.Signal(object)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.nodeTypes: list[str] = []
        self.addEnabled = self.removeEnabled = self.noneEnabled = True
        self.scene = None
        self._node = None

    def currentNode(self) -> Any:
        if self._node is None and self.scene is not None and self.nodeTypes and not self.noneEnabled:
            nodes = self.scene.GetNodesByClass(self.nodeTypes[0])
            self._node = nodes.GetItemAsObject(0) if nodes.GetNumberOfItems() else None
        return self._node

    def setCurrentNode(self, node: Any) -> None:
        self._node = node
        self.currentNodeChanged.emit(node)


class qMRMLSegmentSelectorWidget(qMRMLNodeComboBox):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._segmentID = ""

    def currentSegmentID(self) -> str:
        return self._segmentID

    def setCurrentSegmentID(self, segmentID: str) -> None:
        self._segmentID = segmentID


# ----- slicer.ScriptedLoadableModule (Base/Python/slicer/ScriptedLoadableModule.py), the parts used -----


def makeScriptedLoadableModule() -> types.ModuleType:
    module = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModule:
        def __init__(self, parent: Any) -> None:
            self.parent = parent
            self.moduleName = self.__class__.__name__
            parent.title = ""
            parent.categories = []
            parent.dependencies = []
            parent.contributors = []
            parent.helpText = ""
            parent.acknowledgementText = ""
            if not hasattr(slicer, "selfTests"):
                slicer.selfTests = {}
            slicer.selfTests[self.moduleName] = self.runTest

        def resourcePath(self, filename: str) -> str:
            return os.path.join(os.path.dirname(self.parent.path), "Resources", filename)

        def getDefaultModuleDocumentationLink(self, docPage: str | None = None) -> str:
            url = (
                slicer.app.documentationBaseUrl + docPage
                if docPage
                else slicer.app.moduleDocumentationUrl(self.moduleName)
            )
            return "<p>" + f'For more information, see the <a href="{url}">online documentation</a>.' + "</p>"

        def runTest(self, msec: int = 100, **kwargs: Any) -> None:
            testCase = getattr(sys.modules[self.__module__], self.moduleName + "Test")()
            testCase.messageDelay = msec
            testCase.runTest(**kwargs)

    class ScriptedLoadableModuleWidget:
        def __init__(self, parent: Any = None) -> None:
            self.moduleName = self.__class__.__name__
            if self.moduleName.endswith("Widget"):
                self.moduleName = self.moduleName[:-6]
            self.developerMode = False
            if not parent:
                self.parent = qMRMLWidget()
                self.parent.setLayout(qt.QVBoxLayout())
            else:
                self.parent = parent
            self.layout = self.parent.layout()
            if not parent:
                self.setup()
            slicer.app.moduleManager().connect("moduleAboutToBeUnloaded(QString)", self._onModuleAboutToBeUnloaded)

        def resourcePath(self, filename: str) -> str:
            return os.path.join(os.path.dirname(slicer.util.modulePath(self.moduleName)), "Resources", filename)

        def cleanup(self) -> None:
            pass

        def _onModuleAboutToBeUnloaded(self, moduleName: str) -> None:
            if moduleName == self.moduleName:
                self.cleanup()
                slicer.app.moduleManager().disconnect(
                    "moduleAboutToBeUnloaded(QString)", self._onModuleAboutToBeUnloaded
                )

        def setup(self) -> None:
            pass

    class ScriptedLoadableModuleLogic:
        def __init__(self, parent: Any = None) -> None:
            self.moduleName = self.__class__.__name__
            if self.moduleName.endswith("Logic"):
                self.moduleName = self.moduleName[:-5]
            self.isSingletonParameterNode = True

    class ScriptedLoadableModuleTest(unittest.TestCase):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)

        def delayDisplay(self, message: str, requestedDelay: Any = None, msec: Any = None) -> None:
            slicer.util.delayDisplay(message, msec)

        def runTest(self) -> None:
            pass

    for cls in (
        ScriptedLoadableModule,
        ScriptedLoadableModuleWidget,
        ScriptedLoadableModuleLogic,
        ScriptedLoadableModuleTest,
    ):
        cls.__module__ = module.__name__
        setattr(module, cls.__name__, cls)
    module.__all__ = [
        "ScriptedLoadableModule",
        "ScriptedLoadableModuleWidget",
        "ScriptedLoadableModuleLogic",
        "ScriptedLoadableModuleTest",
    ]
    return module


# ----- ctk -----


def makeCtk() -> types.ModuleType:
    module = types.ModuleType("ctk")

    class ctkCollapsibleButton(qt.QWidget):
        def __init__(self, parent: Any = None) -> None:
            super().__init__(parent)
            self.text = ""
            self.collapsed = False

    class ctkPathLineEdit(qt.QWidget):
        Dirs, Files = 1, 2

        def __init__(self, parent: Any = None) -> None:
            super().__init__(parent)
            self.filters = 0
            self.currentPath = ""

    module.ctkCollapsibleButton = ctkCollapsibleButton
    module.ctkPathLineEdit = ctkPathLineEdit
    return module


def runModuleFunction(callback: Callable[[], Any]) -> Any:
    return callback()
