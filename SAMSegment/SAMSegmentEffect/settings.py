"""SAMSegment's keys in Slicer's application settings (QSettings): the one prefix they share, and
which SAM engine this Slicer uses.

Slicer stores its settings in an INI file (qSlicerCoreApplication.cxx sets
``QSettings::setDefaultFormat(QSettings::IniFormat)``), which keeps no types: after a restart every
value comes back as a string. They belong to the user of this computer, never to a scene: the
server token must not travel with a saved scene or a shared MRML bundle.

Importing this module needs only Qt (the module logic reads the engine choice before anything of
the engine is imported).
"""

from dataclasses import dataclass, field

import qt

SETTINGS_PREFIX = "SAMSegment/"
LOCAL_ENGINE, SERVER_ENGINE = "local", "server"
# The SAM effect's choices kept between sessions (its parameters' defaults), with their first values.
# "display": the model sees the source volume's window/level (SAMSegmentMRML.display_intensity).
EFFECT_CHOICES = {
    "Model": "litemedsam",
    "Device": "auto",
    "IntensityPreset": "display",
    "MemoryPolicy": "recent",
    "Direction": "both",
    # "1": prompts on a slice the segment does not hold propagate only through the slices around it
    # that it does not hold either, so a gap is filled and the slices already segmented are kept.
    "KeepSegmentedSlices": "1",
}
_ENGINE_KEY, _URL_KEY, _TOKEN_KEY = "Engine", "ServerUrl", "ServerToken"


@dataclass(frozen=True)
class EngineChoice:
    """The engine the user chose in the SAM effect's options: the one this Slicer starts on this
    computer, or a server (a department's GPU server) at ``url`` that takes ``token``."""

    kind: str = LOCAL_ENGINE
    url: str = ""
    token: str = field(default="", repr=False)  # never in logs or tracebacks

    @property
    def remote(self):
        return self.kind == SERVER_ENGINE


def engineChoice():
    """The engine chosen last (this computer unless a server was chosen)."""
    settings = qt.QSettings()
    kind = str(settings.value(SETTINGS_PREFIX + _ENGINE_KEY, LOCAL_ENGINE) or LOCAL_ENGINE)
    return EngineChoice(
        SERVER_ENGINE if kind == SERVER_ENGINE else LOCAL_ENGINE,
        str(settings.value(SETTINGS_PREFIX + _URL_KEY, "") or ""),
        str(settings.value(SETTINGS_PREFIX + _TOKEN_KEY, "") or ""),
    )


def saveEngineChoice(choice):
    settings = qt.QSettings()
    settings.setValue(SETTINGS_PREFIX + _ENGINE_KEY, choice.kind)
    settings.setValue(SETTINGS_PREFIX + _URL_KEY, choice.url.strip())
    if choice.token:
        settings.setValue(SETTINGS_PREFIX + _TOKEN_KEY, choice.token)
    else:
        settings.remove(SETTINGS_PREFIX + _TOKEN_KEY)


def savedChoice(name):
    """The user's last choice of the effect's ``name`` (a key of EFFECT_CHOICES)."""
    return str(qt.QSettings().value(SETTINGS_PREFIX + name, EFFECT_CHOICES[name]))


def saveChoice(name, value):
    qt.QSettings().setValue(SETTINGS_PREFIX + name, value)
