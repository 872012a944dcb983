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


REPO_DIR = MODULE_DIR.parent
# The properties of ExtensionsIndex schemas/slicer-extension-catalog-entry-schema-v1.0.1.json
# ("additionalProperties": false; required: $schema, category, scm_url).
INDEX_SCHEMA_KEYS = {
    "$schema",
    "category",
    "scm_url",
    "scm_revision",
    "scm_type",
    "build_dependencies",
    "build_subdirectory",
    "enabled",
    "tier",
}


def test_extensions_index_entry_is_json_with_schema_keys_only():
    import json

    assert not (REPO_DIR / "SAMSegment.s4ext").exists()  # obsolete format since April 2024
    entry = json.loads((REPO_DIR / "SAMSegment.json").read_text())
    assert set(entry) <= INDEX_SCHEMA_KEYS
    assert {"$schema", "category", "scm_url"} <= set(entry)
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.1.json#")
    assert entry["build_dependencies"] == ["PyTorch"]
    assert entry["category"] == "Segmentation"
    assert entry["scm_url"].startswith("https://")
    assert 1 <= entry["tier"] <= 5


def test_cmake_image_urls_point_at_files_of_this_repository():
    cmake = (REPO_DIR / "CMakeLists.txt").read_text()
    urls = re.search(r'set\(EXTENSION_SCREENSHOTURLS "([^"]+)"\)', cmake).group(1).split()
    urls.append(re.search(r'set\(EXTENSION_ICONURL "([^"]+)"\)', cmake).group(1))
    for url in urls:
        assert "${" not in url  # the index's checks read the literal URL
        path = url.split("/main/", 1)[1]
        assert (REPO_DIR / path).is_file(), url
    assert 'VERSION_LESS "5.10"' in cmake


def test_pyproject_is_installed_where_dependencies_looks():
    cmake = (MODULE_DIR / "CMakeLists.txt").read_text()
    assert re.search(r"install\(\s*FILES \$\{PROJECT_SOURCE_DIR\}/pyproject.toml", cmake)
    assert "DESTINATION ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}/Resources/SAMSegment" in cmake
    assert (
        '"Resources", "SAMSegment", "pyproject.toml"'
        in (MODULE_DIR / "SAMSegmentEffect" / "dependencies.py").read_text()
    )
