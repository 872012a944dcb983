"""A fake ``qt`` module (PythonQt's view of Qt 5) with only what SAMSegment's Slicer code uses.

Behaviours reproduced from Qt and PythonQt, because the effect depends on them:
- Qt properties read and written as attributes (``button.enabled = False``, ``combo.currentData``).
- Signals as attributes with ``connect``/``disconnect`` (PythonQt), and the string form
  ``obj.connect("clicked()", slot)``. ``blockSignals(True)`` silences an object's signals.
- ``QAbstractButton::click()`` does nothing on a disabled button; ``QCheckBox`` emits
  ``toggled(bool)`` when ``checked`` changes; ``QComboBox`` emits ``currentIndexChanged(int)``
  when the first item is added, on ``clear()`` and when the index changes; ``setCurrentText`` on a
  non-editable combo box selects the matching item (Qt 5 QComboBox::setCurrentText);
  ``QSpinBox`` clamps its value to [minimum, maximum] (default 0..99).
- ``QTimer`` and ``QSocketNotifier`` are driven by the host loop (host_loop.py), which idles
  holding the GIL like Slicer's event loop; ``QEventLoop.exec()`` runs it until ``quit()``.
- ``QSettings`` lives in memory for one test; values come back as strings, as from Slicer's INI file.
- ``QLineEdit`` emits ``editingFinished`` only from the user's Return (``type``), never from
  ``setText``.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, ClassVar

import host_loop

# ----- signals -----

_allSignals: list[BoundSignal] = []


class BoundSignal:
    def __init__(self, owner: Any, name: str) -> None:
        self.owner, self.name = owner, name
        self.slots: list[Callable] = []
        _allSignals.append(self)

    def connect(self, slot: Callable) -> bool:
        self.slots.append(slot)
        return True

    def disconnect(self, slot: Callable | None = None) -> bool:
        if slot is None:
            self.slots.clear()
            return True
        for index, connected in enumerate(self.slots):
            if connected == slot:
                del self.slots[index]
                return True
        return False  # Qt: QObject::disconnect returns false; PythonQt only warns

    def emit(self, *args: Any) -> None:
        if getattr(self.owner, "_signalsBlocked", False):
            return
        for slot in list(self.slots):
            _call(slot, args)


def _call(slot: Callable, args: tuple) -> None:
    """PythonQt calls a slot with as many of the signal's arguments as it accepts."""
    import inspect

    try:
        parameters = inspect.signature(slot).parameters.values()
    except (TypeError, ValueError):
        slot(*args)
        return
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        slot(*args)
        return
    count = sum(1 for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    slot(*args[:count])


class Signal:
    """Declares a signal on a class; each instance gets its own BoundSignal."""

    def __init__(self, *types_: Any) -> None:
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type) -> Any:
        if instance is None:
            return self
        key = "_signal_" + self.name
        if key not in instance.__dict__:
            instance.__dict__[key] = BoundSignal(instance, self.name)
        return instance.__dict__[key]


def connectionsTo(receiver: Any) -> list[str]:
    """Signals (``owner class.signal``) still connected to a bound method of ``receiver``."""
    found = []
    for signal in _allSignals:
        for slot in signal.slots:
            if getattr(slot, "__self__", None) is receiver:
                found.append(f"{type(signal.owner).__name__}.{signal.name} -> {slot.__name__}")
    return found


def resetSignals() -> None:
    _allSignals.clear()


# ----- objects and widgets -----


class QObject:
    destroyed = Signal()

    def __init__(self, parent: Any = None) -> None:
        self._signalsBlocked = False
        self.objectName = ""

    def blockSignals(self, block: bool) -> bool:
        previous, self._signalsBlocked = self._signalsBlocked, bool(block)
        return previous

    def signalsBlocked(self) -> bool:
        return self._signalsBlocked

    def connect(self, signature: str, slot: Callable) -> bool:
        """PythonQt's ``obj.connect("signal(args)", slot)``."""
        return getattr(self, signature.split("(")[0]).connect(slot)

    def disconnect(self, signature: str, slot: Callable | None = None) -> bool:
        return getattr(self, signature.split("(")[0]).disconnect(slot)

    def deleteLater(self) -> None:
        self.destroyed.emit()


class QWidget(QObject):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.enabled = True
        self.visible = True
        self.toolTip = ""
        self.styleSheet = ""
        self._layout = None

    def setEnabled(self, enabled: bool) -> None:
        self.enabled = bool(enabled)

    def isEnabled(self) -> bool:
        return self.enabled

    def setVisible(self, visible: bool) -> None:
        self.visible = bool(visible)

    def show(self) -> None:
        self.visible = True

    def hide(self) -> None:
        self.visible = False

    def isVisible(self) -> bool:
        return self.visible

    def setToolTip(self, text: str) -> None:
        self.toolTip = text

    def setStyleSheet(self, sheet: str) -> None:
        self.styleSheet = sheet

    def setLayout(self, layout: QLayout) -> None:
        self._layout = layout

    def layout(self) -> QLayout | None:
        return self._layout


class QFrame(QWidget):
    pass


class QLabel(QFrame):
    def __init__(self, text: str = "", parent: Any = None) -> None:
        super().__init__(parent)
        self.text = text
        self.wordWrap = False

    def setText(self, text: str) -> None:
        self.text = text


class QAbstractButton(QWidget):
    clicked = Signal(bool)
    toggled = Signal(bool)

    def __init__(self, text: str = "", parent: Any = None) -> None:
        super().__init__(parent)
        self.text = text
        self.checkable = False
        self._checked = False

    @property
    def checked(self) -> bool:
        return self._checked

    @checked.setter
    def checked(self, value: bool) -> None:
        value = bool(value)
        if value != self._checked:
            self._checked = value
            self.toggled.emit(value)

    def setChecked(self, value: bool) -> None:
        self.checked = value

    def isChecked(self) -> bool:
        return self._checked

    def setText(self, text: str) -> None:
        self.text = text

    def click(self) -> None:
        """QAbstractButton::click(): nothing happens when the button is disabled."""
        if not self.enabled:
            return
        if self.checkable:
            self.checked = not self._checked
        self.clicked.emit(self._checked)


class QPushButton(QAbstractButton):
    pass


class QToolButton(QAbstractButton):
    pass


class QCheckBox(QAbstractButton):
    def __init__(self, text: str = "", parent: Any = None) -> None:
        super().__init__(text, parent)
        self.checkable = True


class QComboBox(QWidget):
    currentIndexChanged = Signal(int)
    currentTextChanged = Signal(str)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._items: list[tuple[str, Any]] = []
        self._index = -1

    def addItem(self, text: str, data: Any = None) -> None:
        self._items.append((text, data))
        if self._index < 0:
            self._setIndex(0)

    def addItems(self, texts: Any) -> None:
        for text in texts:
            self.addItem(text)

    def clear(self) -> None:
        self._items = []
        self._setIndex(-1)

    def count(self) -> int:
        return len(self._items)

    def itemText(self, index: int) -> str:
        return self._items[index][0]

    def itemData(self, index: int) -> Any:
        return self._items[index][1]

    def findData(self, data: Any) -> int:
        return next((i for i, item in enumerate(self._items) if item[1] == data), -1)

    def findText(self, text: str) -> int:
        return next((i for i, item in enumerate(self._items) if item[0] == text), -1)

    def _setIndex(self, index: int) -> None:
        if index != self._index:
            self._index = index
            self.currentIndexChanged.emit(index)
            self.currentTextChanged.emit(self.currentText)

    @property
    def currentIndex(self) -> int:
        return self._index

    @currentIndex.setter
    def currentIndex(self, index: int) -> None:
        self._setIndex(index if 0 <= index < len(self._items) else -1)

    def setCurrentIndex(self, index: int) -> None:
        self.currentIndex = index

    @property
    def currentText(self) -> str:
        return self._items[self._index][0] if self._index >= 0 else ""

    @currentText.setter
    def currentText(self, text: str) -> None:
        index = self.findText(text)
        if index >= 0:
            self._setIndex(index)

    @property
    def currentData(self) -> Any:
        return self._items[self._index][1] if self._index >= 0 else None

    def select(self, data: Any) -> None:
        """Test helper: what a user choosing the item with ``data`` does."""
        index = self.findData(data)
        assert index >= 0, f"{data!r} is not among {self._items}"
        self.currentIndex = index


class QAbstractSpinBox(QWidget):
    valueChanged = Signal(int)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._minimum, self._maximum, self._value = 0, 99, 0

    @property
    def minimum(self) -> int:
        return self._minimum

    @minimum.setter
    def minimum(self, value: int) -> None:
        self._minimum = value
        self._maximum = max(self._maximum, value)
        self.value = self._value

    @property
    def maximum(self) -> int:
        return self._maximum

    @maximum.setter
    def maximum(self, value: int) -> None:
        self._maximum = value
        self._minimum = min(self._minimum, value)
        self.value = self._value

    def setRange(self, minimum: int, maximum: int) -> None:
        self.minimum, self.maximum = minimum, maximum

    @property
    def value(self) -> int:
        return self._value

    @value.setter
    def value(self, value: int) -> None:
        value = min(max(value, self._minimum), self._maximum)
        if value != self._value:
            self._value = value
            self.valueChanged.emit(value)


class QSpinBox(QAbstractSpinBox):
    pass


class QProgressBar(QWidget):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.minimum, self.maximum, self.value = 0, 100, -1

    def setRange(self, minimum: int, maximum: int) -> None:
        self.minimum, self.maximum = minimum, maximum


class QLineEdit(QWidget):
    Normal, NoEcho, Password, PasswordEchoOnEdit = 0, 1, 2, 3  # QLineEdit::EchoMode
    textChanged = Signal(str)
    editingFinished = Signal()

    def __init__(self, text: str = "", parent: Any = None) -> None:
        super().__init__(parent)
        self._text = text
        self.placeholderText = ""
        self.echoMode = QLineEdit.Normal

    @property
    def text(self) -> str:
        return self._text

    @text.setter
    def text(self, text: str) -> None:
        """QLineEdit::setText emits textChanged, never editingFinished (only the user's Return or
        leaving the field does)."""
        if text != self._text:
            self._text = text
            self.textChanged.emit(text)

    def setText(self, text: str) -> None:
        self.text = text

    def type(self, text: str) -> None:
        """Test helper: what a user replacing the text and pressing Return does."""
        self.text = text
        self.editingFinished.emit()


class QHeaderView(QWidget):
    def setStretchLastSection(self, stretch: bool) -> None:
        pass


class QAbstractItemView(QWidget):
    NoEditTriggers = 0


class QTableWidgetItem:
    def __init__(self, text: str = "") -> None:
        self._text = text

    def text(self) -> str:
        return self._text


class QTableWidget(QAbstractItemView):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows, self._columns, self._items = 0, 0, {}
        self._header = QHeaderView()
        self.editTriggers = 0

    def setColumnCount(self, count: int) -> None:
        self._columns = count

    def setRowCount(self, count: int) -> None:
        self._rows = count

    def rowCount(self) -> int:
        return self._rows

    def setHorizontalHeaderLabels(self, labels: Any) -> None:
        self.headerLabels = list(labels)

    def horizontalHeader(self) -> QHeaderView:
        return self._header

    def setItem(self, row: int, column: int, item: QTableWidgetItem) -> None:
        self._items[row, column] = item

    def item(self, row: int, column: int) -> QTableWidgetItem | None:
        return self._items.get((row, column))

    def resizeColumnsToContents(self) -> None:
        pass


# ----- layouts: they only remember what was added, so tests can find widgets -----


class QLayout(QObject):
    def __init__(self, parent: Any = None) -> None:
        super().__init__()
        self.children: list[Any] = []
        if isinstance(parent, QWidget):
            parent.setLayout(self)

    def addWidget(self, widget: Any, *args: Any) -> None:
        self.children.append(widget)

    def insertWidget(self, index: int, widget: Any, *args: Any) -> None:
        self.children.insert(index, widget)

    def addLayout(self, layout: Any, *args: Any) -> None:
        self.children.append(layout)

    def addStretch(self, *args: Any) -> None:
        pass

    def addRow(self, *items: Any) -> None:
        self.children.extend(item for item in items if not isinstance(item, str))

    def widgets(self) -> list[Any]:
        """Every widget under this layout, depth first (test helper)."""
        found = []
        for child in self.children:
            found.append(child)
            if isinstance(child, QLayout):
                found.extend(child.widgets())
            elif isinstance(child, QWidget) and child.layout() is not None:
                found.extend(child.layout().widgets())
        return found


class QBoxLayout(QLayout):
    pass


class QHBoxLayout(QBoxLayout):
    pass


class QVBoxLayout(QBoxLayout):
    pass


class QFormLayout(QLayout):
    pass


# ----- event loop: timers, socket notifiers, QEventLoop -----


class QTimer(QObject):
    timeout = Signal()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.interval = 0
        self.singleShot = False  # the property; the static function is QTimer.singleShot(ms, slot)
        self._active = False

    def setInterval(self, ms: int) -> None:
        self.interval = int(ms)

    def setSingleShot(self, singleShot: bool) -> None:
        self.__dict__["singleShot"] = bool(singleShot)

    def isSingleShot(self) -> bool:
        return bool(self.__dict__.get("singleShot", False))

    def start(self, ms: int | None = None) -> None:
        """QTimer::start(): (re)starts; a running timer is restarted."""
        if ms is not None:
            self.interval = int(ms)
        loop = host_loop.current()
        loop.removeTimer(self)
        loop.addTimer(self, self.interval)
        self._active = True

    def stop(self) -> None:
        host_loop.current().removeTimer(self)
        self._active = False

    def isActive(self) -> bool:
        return self._active

    @property
    def active(self) -> bool:
        return self._active

    def _fire(self) -> None:
        if self.isSingleShot():
            self._active = False
        else:
            host_loop.current().addTimer(self, self.interval)
        self.timeout.emit()

    def __repr__(self) -> str:
        names = ", ".join(getattr(s, "__qualname__", repr(s)) for s in self.timeout.slots)
        return f"QTimer({self.interval} ms -> {names})"


def _singleShot(ms: int, slot: Callable) -> None:
    timer = QTimer()
    timer.setSingleShot(True)
    timer.timeout.connect(slot)
    timer.start(ms)


# PythonQt exposes both the ``singleShot`` property (on instances) and the static function.
class _SingleShotDescriptor:
    def __get__(self, instance: Any, owner: type) -> Any:
        if instance is None:
            return _singleShot
        return bool(instance.__dict__.get("singleShot", False))

    def __set__(self, instance: Any, value: bool) -> None:
        instance.__dict__["singleShot"] = bool(value)


QTimer.singleShot = _SingleShotDescriptor()


class QSocketNotifier(QObject):
    """Watches a file descriptor from the host loop; ``activated(int)`` fires when it is ready."""

    Read, Write, Exception = host_loop.READ, host_loop.WRITE, host_loop.EXCEPTION
    activated = Signal(int)

    def __init__(self, socket: int, type_: int, parent: Any = None) -> None:
        super().__init__(parent)
        self._socket, self._type = int(socket), type_
        self._enabled = False
        self.setEnabled(True)  # QSocketNotifier is enabled on construction

    def socket(self) -> int:
        return self._socket

    def type(self) -> int:
        return self._type

    def isEnabled(self) -> bool:
        return self._enabled

    def setEnabled(self, enabled: bool) -> None:
        self._enabled = bool(enabled)
        if self._enabled:
            host_loop.current().addNotifier(self)
        else:
            host_loop.current().removeNotifier(self)

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self.setEnabled(value)

    def deleteLater(self) -> None:
        self.setEnabled(False)
        super().deleteLater()


class QEventLoop(QObject):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._running = False

    def exec(self) -> int:
        self._running = True
        host_loop.current().runUntil(lambda: not self._running, timeout=3600)
        return 0

    exec_ = exec

    def quit(self) -> None:
        self._running = False

    def isRunning(self) -> bool:
        return self._running


# ----- values -----


class QSettings(QObject):
    """Slicer's application settings: an INI file (qSlicerCoreApplication.cxx calls
    ``QSettings::setDefaultFormat(QSettings::IniFormat)``), which keeps no types: "when reading
    settings from INI files, all values are returned as QString" (Qt's QSettings::Format
    documentation), and PythonQt hands them to Python as ``str``. Every value comes back as it
    would after a restart: numbers and booleans as strings ("5", "true"); lists stay lists."""

    _store: ClassVar[dict[str, Any]] = {}  # one store per process, as one settings file per user

    def value(self, key: str, default: Any = None) -> Any:
        return QSettings._store.get(key, default)

    def setValue(self, key: str, value: Any) -> None:
        QSettings._store[key] = _asIniValue(value)

    def contains(self, key: str) -> bool:
        return key in QSettings._store

    def remove(self, key: str) -> None:
        QSettings._store.pop(key, None)

    @classmethod
    def resetStore(cls) -> None:
        cls._store = {}


def _asIniValue(value: Any) -> Any:
    """What an INI file gives back for ``value`` (QSettingsPrivate::variantToString)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return [_asIniValue(item) for item in value]
    return str(value)


class QIcon:
    def __init__(self, path: str = "") -> None:
        self.path = path

    def isNull(self) -> bool:
        return not self.path


class QPoint:
    def __init__(self, x: int = 0, y: int = 0) -> None:
        self._x, self._y = x, y

    def x(self) -> int:
        return self._x

    def y(self) -> int:
        return self._y


class QVector3D:
    def __init__(self, x: float = 0, y: float = 0, z: float = 0) -> None:
        self._v = (x, y, z)

    def x(self) -> float:
        return self._v[0]

    def y(self) -> float:
        return self._v[1]

    def z(self) -> float:
        return self._v[2]


class QMessageBox(QWidget):
    Ok, Cancel, Yes, No, Retry, Close = 0x400, 0x400000, 0x4000, 0x10000, 0x80000, 0x200000
    InvalidRole, YesRole, NoRole = -1, 5, 6
    Information, Warning, Critical, Question = 1, 2, 3, 4


def makeModule() -> types.ModuleType:
    """The ``qt`` module: every public name of this file."""
    module = types.ModuleType("qt")
    module.__doc__ = __doc__
    for name, value in globals().items():
        if name.startswith("Q"):
            setattr(module, name, value)
    module.connectionsTo = connectionsTo
    return module
