"""How long each GUI-thread step of the SAM effect takes on a large volume (512 x 512 x 300 by default).

The effect runs as in Slicer (tests/slicer_qt reproduces Slicer's Qt side around slicer-core, with
a main loop that idles holding the GIL), talking to the engine service in its own process with
LiteMedSAM, on the synthetic CT of ``samsegment bench``. Prints JSON: for each step, the longest
single main-thread callback (a stall of the GUI) and the step's wall time. The Segment Editor's
own work when an effect is activated (resampling the source volume onto the segmentation's grid)
is timed apart: Slicer does it for every effect.

    python benchmarks/effect_gui_steps.py [--slices 300] [--size 512] [--json OUT.json]

Target: every step's longest callback <= 50 ms.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "slicer_qt"), str(ROOT / "tests"), str(ROOT / "SAMSegment")]

import slicer  # noqa: E402
import slicer_qt  # noqa: E402 - needs the paths above

from SAMSegmentLib.atomic import write_text  # noqa: E402
from SAMSegmentLib.bench.cases import synthetic_ct  # noqa: E402
from SAMSegmentLib.service.launcher import EngineProcess  # noqa: E402

TARGET_MS = 50.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--propagate", type=int, default=12, help="slices to propagate (default: 12)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    slicer_qt.install()
    from sam_harness import MODULE_FILE, Editor

    case = synthetic_ct(args.slices, args.size)
    steps: dict[str, dict[str, float]] = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        app = slicer_qt.newApplication(monkeypatch)
        module = app.loadScriptedModule(str(MODULE_FILE))
        app.startupCompleted.emit()
        monkeypatch.setattr(module.pythonModule, "engineProcess", lambda: EngineProcess(python_path=[str(ROOT)]))
        editor = Editor(app, case.volume.array, sliceIndex=case.seed_index)
        host = app.host

        def step(name: str, action, until=None, timeout: float = 600.0) -> None:
            host.longestCallbackSeconds, host.longestCallbackName = 0.0, ""
            started = time.perf_counter()
            action_started = time.perf_counter()
            action()
            action_s = time.perf_counter() - action_started
            if until is not None:
                host.runUntil(until, timeout=timeout, message=name)
            longest = max(action_s, host.longestCallbackSeconds)
            steps[name] = {
                "longest_main_thread_ms": round(longest * 1000.0, 1),
                "longest_in": "the step's action"
                if action_s >= host.longestCallbackSeconds
                else host.longestCallbackName,
                "wall_s": round(time.perf_counter() - started, 2),
            }

        started = time.perf_counter()
        editor.widget.logic.UpdateAlignedSourceVolume()  # Slicer's own, for any effect
        aligned_source_s = time.perf_counter() - started
        effects = []
        step(
            "activate (first time: installed packages checked once; the engine starts)",
            lambda: effects.append(editor.activate()),
        )
        effect = effects[0]
        step("model and volume sent", lambda: None, lambda: effect.session.modelReady)
        x0, y0, x1, y1 = case.box
        step(
            "box drawn, preview shown",
            lambda: editor.widget.drag(editor.red, editor.xyOf(x0, y0), editor.xyOf(x1, y1)),
            lambda: effect.session.canApply,
        )
        step("Apply (one slice written, undoable)", lambda: effect.options.applyButton.click())
        step(
            "another box (LiteMedSAM takes boxes), preview shown",
            lambda: editor.widget.drag(editor.red, editor.xyOf(x0 + 2, y0 + 2), editor.xyOf(x1 - 2, y1 - 2)),
            lambda: effect.session.canApply,
        )
        first = max(0, case.seed_index - args.propagate // 2)
        effect.options.limitRangeCheckBox.checked = True
        effect.options.firstSliceSpinBox.value = first
        effect.options.lastSliceSpinBox.value = min(args.slices - 1, first + args.propagate - 1)
        step(
            f"propagate {args.propagate} slices (each shown, then one write)",
            lambda: effect.options.propagateButton.click(),
            lambda: not effect.session.propagating,
        )
        step("leave the effect", lambda: editor.widget.setActiveEffectByName(""))
        step(
            "activate again (packages already checked, engine running)",
            lambda: editor.activate(),
            lambda: effects[0].session is not None and effects[0].session.modelReady,
        )
        slicer.util.getModuleLogic("SAMSegment").shutdown()
        slicer_qt.quitApplication(app)
    report = {
        "volume_kji": list(case.volume.array.shape),
        "engine": "samsegment serve with LiteMedSAM in its own process",
        "segment_editor_aligned_source_volume_ms": round(aligned_source_s * 1000.0, 1),
        "target_ms": TARGET_MS,
        "steps": steps,
        "all_within_target": all(s["longest_main_thread_ms"] <= TARGET_MS for s in steps.values()),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json is not None:
        write_text(args.json, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
