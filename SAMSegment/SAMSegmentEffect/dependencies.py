"""SAM's Python packages inside Slicer: checked without importing them, installed only when the
user asks (the effect's and the module's Install button), after one confirmation.

PyTorch comes through the PyTorch extension (PyTorchUtils picks the build for the GPU driver), with
the version this engine needs; the rest through Slicer's pip helpers. Versions are checked, not
only presence: a torch too old for the engine counts as missing.

Runs on Slicer 5.10 (Python 3.12) and later: ``slicer.packaging`` (5.12) is used when present.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os

import slicer
import tomllib
from slicer.i18n import tr as _

# Installed by the PyTorch extension, never by pip here.
_TORCH_PACKAGES = ("torch", "torchvision")
# Bundled with Slicer.
_BUNDLED = {"numpy", "simpleitk"}

_satisfied = False  # once everything is installed it stays so for this Slicer session


def pyprojectPath() -> str:
    """The engine's pyproject.toml: installed as a module resource (SAMSegment/CMakeLists.txt), or
    at the root of a source checkout."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for candidate in (
        os.path.join(here, "Resources", "SAMSegment", "pyproject.toml"),
        os.path.join(os.path.dirname(here), "pyproject.toml"),
    ):
        if os.path.exists(candidate):
            return candidate
    raise FileNotFoundError("SAMSegment's pyproject.toml is missing from the installation.")


def _dependencies() -> list[str]:
    with open(pyprojectPath(), "rb") as stream:
        return tomllib.load(stream)["project"]["dependencies"]


def _requirementClass():
    try:
        from packaging.requirements import Requirement
    except ImportError:  # Slicer's Python always has pip, which vendors packaging
        from pip._vendor.packaging.requirements import Requirement
    return Requirement


def torchRequirements() -> dict[str, str]:
    """{"torch": ">=2.1", "torchvision": ">=0.16"}: the version specifiers PyTorchUtils gets."""
    Requirement = _requirementClass()
    found = {}
    for text in _dependencies():
        requirement = Requirement(text)
        if requirement.name.lower() in _TORCH_PACKAGES:
            found[requirement.name.lower()] = str(requirement.specifier)
    return found


def pipRequirements() -> list[str]:
    """The engine's requirements that pip installs inside Slicer (single source: pyproject.toml)."""
    Requirement = _requirementClass()
    return [r for r in _dependencies() if Requirement(r).name.lower() not in set(_TORCH_PACKAGES) | _BUNDLED]


def _satisfiedRequirement(text: str) -> bool:
    requirement = _requirementClass()(text)
    try:
        version = importlib.metadata.version(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return requirement.specifier.contains(version, prereleases=True)


def missingRequirements() -> list[str]:
    """Requirements (with versions) that are not installed or too old; reads package metadata only."""
    torch = [name + specifier for name, specifier in torchRequirements().items()]
    return [r for r in torch + pipRequirements() if not _satisfiedRequirement(r)]


def dependenciesSatisfied() -> bool:
    global _satisfied
    if not _satisfied:
        _satisfied = not missingRequirements()
    return _satisfied


def installDependencies() -> bool:
    """Install what is missing after one confirmation; False when declined or failed (shown)."""
    missing = missingRequirements()
    if not missing:
        return True
    if not slicer.util.confirmOkCancelDisplay(
        _(
            "SAM needs these Python packages: {packages}. Download and install them now? This can take several minutes."
        ).format(packages=", ".join(missing))
    ):
        return False
    Requirement = _requirementClass()
    torchMissing = any(Requirement(r).name.lower() in _TORCH_PACKAGES for r in missing)
    try:
        if torchMissing and not _installTorch():
            return False
        pipMissing = [r for r in pipRequirements() if not _satisfiedRequirement(r)]
        if pipMissing:
            if hasattr(slicer, "packaging"):  # Slicer 5.12 and later
                slicer.packaging.pip_ensure(pipMissing, requester="SAMSegment")
            else:
                slicer.util.pip_install(pipMissing)
    except Exception as error:
        logging.exception("Installing SAMSegment's packages failed")
        slicer.util.errorDisplay(_("Installing the packages SAM needs failed: {error}").format(error=error))
        return False
    importlib.invalidate_caches()
    global _satisfied
    _satisfied = False
    if not dependenciesSatisfied():
        slicer.util.errorDisplay(
            _("These packages are still missing or too old: {packages}.").format(
                packages=", ".join(missingRequirements())
            )
        )
        return False
    return True


def _installTorch() -> bool:
    """PyTorch through the PyTorch extension, with the versions the engine needs. Raises on failure."""
    try:
        import PyTorchUtils
    except ImportError:
        slicer.util.errorDisplay(
            _(
                "SAM needs PyTorch. Install the 'PyTorch' extension from the Extensions Manager, restart Slicer, "
                "and click Install again."
            )
        )
        return False
    versions = torchRequirements()
    torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
        askConfirmation=False,  # the user already confirmed the whole list
        torchVersionRequirement=versions.get("torch") or None,
        torchvisionVersionRequirement=versions.get("torchvision") or None,
    )
    return torch is not None
