"""The engine as the Slicer extension installs it: SAMSegment/CMakeLists.txt leaves the developer
tools out, and what remains imports and serves without them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _installed_copy(destination: Path) -> list[str]:
    """Copy the engine's Python files as CMake's glob and filter pick them; the paths left out."""
    cmake = (REPO / "SAMSegment" / "CMakeLists.txt").read_text()
    pattern = re.search(r'list\(FILTER SAMSegmentLib_SCRIPTS EXCLUDE REGEX "(.*?)"\)', cmake).group(1)
    excluded = re.compile(pattern.replace("\\\\", "\\"))
    left_out = []
    for path in sorted((REPO / "SAMSegmentLib").rglob("*.py")):
        relative = path.relative_to(REPO).as_posix()
        if excluded.search(relative):
            left_out.append(relative)
            continue
        (destination / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, destination / relative)
    return left_out


@pytest.mark.slow  # copies the engine and starts it in a process
def test_the_extension_leaves_out_the_benchmarks_and_still_serves(tmp_path: Path) -> None:
    left_out = _installed_copy(tmp_path)
    assert "SAMSegmentLib/bench/targets.py" in left_out
    assert {"SAMSegmentLib/cli/bench_command.py", "SAMSegmentLib/cli/loadtest_command.py"} <= set(left_out)
    assert not any(path.startswith("SAMSegmentLib/service/") for path in left_out)
    code = (
        "from SAMSegmentLib.cli import build_parser\n"
        "parser = build_parser()\n"
        "commands = parser._subparsers._group_actions[0].choices\n"
        "assert 'serve' in commands and 'segment' in commands, sorted(commands)\n"
        "assert 'bench' not in commands and 'loadtest' not in commands, sorted(commands)\n"
        "import SAMSegmentLib.service.engine\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert completed.returncode == 0, completed.stderr
