"""The extension's build lists every module file, and the Slicer side loads without torch."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slicer

MODULE_DIR = Path(__file__).resolve().parents[2] / "SAMSegment"


def test_cmake_lists_every_python_file_of_the_module():
    cmake = (MODULE_DIR / "CMakeLists.txt").read_text()
    listed = set(re.search(r"set\(MODULE_PYTHON_SCRIPTS(.*?)\)", cmake, re.S).group(1).split())
    listed = {name.replace("${MODULE_NAME}", "SAMSegment") for name in listed}
    onDisk = {str(path.relative_to(MODULE_DIR)) for path in MODULE_DIR.rglob("*.py") if "Testing" not in path.parts}
    assert listed == onDisk


def test_glue_imports_without_torch():
    """Slicer loads the module and registers the effect at startup, before torch is installed."""
    modules = [f"SAMSegmentMRML.{path.stem}" for path in (MODULE_DIR / "SAMSegmentMRML").glob("*.py")]
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any 'import torch' now fails
        f"sys.path[:0] = [{str(MODULE_DIR)!r}, {str(MODULE_DIR.parent)!r}]\n"
        f"import importlib; [importlib.import_module(name) for name in {modules!r}]\n"
        "import SAMSegmentLib.checkpoints, SAMSegmentLib.registry, SAMSegmentLib.intensity\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
