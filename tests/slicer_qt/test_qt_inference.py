"""Prompt, preview, Apply, Propagate and undo through the module logic's worker client, with the
host loop idling while holding the GIL as Slicer's event loop does."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.slicer


@pytest.fixture
def liveEffect(samModule, editor, tinyEngine):
    effect = editor.activate()
    assert effect.session is not None, effect.options.statusLabel.text
    editor.host.runUntil(lambda: effect.session.modelReady, timeout=300, message="the model loaded")
    return effect


def test_click_preview_apply_and_undo(liveEffect, editor):
    effect = liveEffect
    started = time.monotonic()
    editor.widget.click(editor.red, editor.xyOf(32, 30))
    editor.host.runUntil(lambda: effect.session.canApply, timeout=300, message="a preview")
    clickSeconds = time.monotonic() - started
    assert effect.options.applyButton.enabled
    effect.options.applyButton.click()
    written = editor.segmentArray()
    assert written[6].any() and not written[5].any() and not written[7].any()  # the prompted slice only
    assert effect.session.prompts.empty
    editor.widget.logic.Undo()
    assert not editor.segmentArray().any()
    print(f"click to preview under the GIL-holding loop: {clickSeconds:.2f} s")


def test_propagate_runs_to_the_end_through_the_buttons(liveEffect, editor):
    """Plumbing only (random weights find nothing to carry): the Propagate button starts it, the
    progress bar shows while it runs, it ends with a status and the buttons come back."""
    effect = liveEffect
    effect.options.limitRangeCheckBox.checked = True
    effect.options.firstSliceSpinBox.value, effect.options.lastSliceSpinBox.value = 5, 7
    editor.widget.click(editor.red, editor.xyOf(32, 30))
    assert effect.options.propagateButton.enabled
    effect.options.propagateButton.click()
    assert effect.options.progressBar.visible and effect.options.cancelPropagationButton.enabled
    editor.host.runUntil(lambda: not effect.session.propagating, timeout=300, message="the propagation")
    written = editor.segmentArray()
    assert not written[:5].any() and not written[8:].any()
    assert not effect.options.progressBar.visible and effect.options.statusLabel.text
    assert effect.options.everythingButton.enabled
