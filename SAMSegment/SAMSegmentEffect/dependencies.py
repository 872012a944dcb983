"""Install what the engine needs on first use, after one confirmation: PyTorch through the PyTorch
extension (it picks the build for the GPU driver), the rest with Slicer's pip helpers."""

from __future__ import annotations

import importlib.util
import logging
import os
import tomllib

import slicer
from slicer.i18n import tr as _

# Installed by the PyTorch extension, never by pip here.
_TORCH_PACKAGES = {"torch", "torchvision"}
# Bundled with Slicer.
_BUNDLED = {"numpy", "simpleitk"}


def pyprojectPath() -> str:
    """The engine's pyproject.toml: installed beside the module, or at the root of a source checkout."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for candidate in (
        os.path.join(here, "Resources", "SAMSegment", "pyproject.toml"),
        os.path.join(os.path.dirname(here), "pyproject.toml"),
    ):
        if os.path.exists(candidate):
            return candidate
    raise FileNotFoundError("SAMSegment's pyproject.toml is missing from the installation.")


def pipRequirements() -> list[str]:
    """The engine's requirements that pip should install inside Slicer (single source: pyproject.toml)."""
    with open(pyprojectPath(), "rb") as stream:
        dependencies = tomllib.load(stream)["project"]["dependencies"]
    return [r for r in dependencies if _distributionName(r).lower() not in _TORCH_PACKAGES | _BUNDLED]


def torchInstalled() -> bool:
    return importlib.util.find_spec("torch") is not None


def ensureDependencies() -> bool:
    """Install missing packages after one confirmation; False when the user declined or it failed."""
    if not torchInstalled():
        if not _installTorch():
            return False
    requirements = pipRequirements()
    try:
        if hasattr(slicer, "packaging"):
            slicer.packaging.pip_ensure(requirements, requester="SAMSegment")
        else:
            missing = [
                r for r in requirements if importlib.util.find_spec(_distributionName(r).replace("-", "_")) is None
            ]
            if missing:
                if not slicer.util.confirmOkCancelDisplay(
                    _("SAM needs these Python packages: {packages}. Install them now?").format(
                        packages=", ".join(missing)
                    )
                ):
                    return False
                slicer.util.pip_install(missing)
    except RuntimeError:  # declined in pip_ensure's dialog
        return False
    except Exception as error:  # noqa: BLE001 - any pip failure is shown, nothing else changes
        logging.exception("Installing SAMSegment's packages failed")
        slicer.util.errorDisplay(_("Installing the packages SAM needs failed: {error}").format(error=error))
        return False
    return True


def _installTorch() -> bool:
    try:
        import PyTorchUtils
    except ImportError:
        slicer.util.errorDisplay(
            _(
                "SAM needs PyTorch. Install the 'PyTorch' extension from the Extensions Manager, restart Slicer, "
                "and choose the SAM effect again."
            )
        )
        return False
    torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True)
    return torch is not None


def _distributionName(requirement: str) -> str:
    """'segment-anything>=1.0' -> 'segment-anything'."""
    name = requirement
    for separator in "<>=!~;[ ":
        name = name.split(separator)[0]
    return name.strip()
