"""Prompt bookkeeping and stale-answer filtering: the effect's decisions, without Qt."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import pytest

from SAMSegmentLib.volume import Axis
from SAMSegmentMRML.prompt_session import PromptSession
from SAMSegmentMRML.request_tracker import RequestTracker
from SAMSegmentMRML.slice_views import SlicePosition

pytestmark = pytest.mark.slicer


def _at(x: float, y: float, index: int = 4, axis: Axis = Axis.AXIAL) -> SlicePosition:
    return SlicePosition(axis, index, (x, y))


def test_points_and_box_become_engine_prompts():
    session = PromptSession()
    session.addPoint(_at(10, 12), positive=True)
    session.addPoint(_at(30, 5), positive=False)
    session.setBox(_at(40, 50), _at(20, 8))
    prompts = session.enginePrompts()
    assert prompts.points == [(10.0, 12.0), (30.0, 5.0)]
    assert prompts.labels == [1, 0]
    assert prompts.box == (20, 8, 40, 50)  # corners sorted whichever way the box was dragged
    assert (session.axis, session.index) == (Axis.AXIAL, 4)


def test_prompt_on_another_slice_or_axis_starts_over():
    session = PromptSession()
    assert not session.addPoint(_at(10, 12), True)
    assert session.addPoint(_at(11, 12, index=5), True)
    assert session.enginePrompts().points == [(11.0, 12.0)]
    assert session.setBox(_at(0, 0, index=5, axis=Axis.CORONAL), _at(9, 9, index=5, axis=Axis.CORONAL))
    assert session.points == [] and session.axis == Axis.CORONAL
    with pytest.raises(ValueError, match="same slice"):
        session.setBox(_at(0, 0, index=1), _at(5, 5, index=2))


def test_remove_nearest_point_then_box_then_nothing():
    session = PromptSession()
    session.addPoint(_at(10, 10), True)
    session.addPoint(_at(20, 20), False)
    session.setBox(_at(5, 5), _at(30, 30))
    assert session.removeAt(_at(19, 21), radius=3)
    assert session.enginePrompts().points == [(10.0, 10.0)]
    assert not session.removeAt(_at(10, 10, index=9), radius=3)  # another slice
    assert session.removeAt(_at(25, 8), radius=3)  # inside the box, no point near
    assert session.box is None
    assert not session.removeAt(_at(60, 60), radius=3)


def test_dropping_points_keeps_the_box_or_empties_the_set():
    session = PromptSession()
    session.addPoint(_at(10, 12), positive=True)
    session.setBox(_at(40, 50), _at(20, 8))
    session.addPoint(_at(30, 5), positive=False)
    revision = session.revision
    assert session.dropPoints() == 2
    assert session.points == [] and session.box == (20, 8, 40, 50) and session.onSlice(_at(0, 0))
    assert session.revision > revision
    assert session.dropPoints() == 0 and session.revision == revision + 1  # nothing to drop: no edit

    clicksOnly = PromptSession()
    clicksOnly.addPoint(_at(10, 12), positive=True)
    assert clicksOnly.dropPoints() == 1
    assert clicksOnly.empty and clicksOnly.axis is None  # no slice is prompted any more


def test_revision_counts_edits():
    session = PromptSession()
    revisions = [session.revision]
    session.setBox(_at(5, 5), _at(30, 30))
    session.addPoint(_at(10, 10), True)
    revisions.append(session.revision)
    assert session.removeAt(_at(10, 10), radius=1)  # the point
    assert session.box is not None and not session.points
    revisions.append(session.revision)
    assert revisions == sorted(set(revisions))
    session.clear()
    assert session.axis is None


class _Kind(Enum):
    SLICE = "slice"
    RESULT = "result"

    @property
    def final(self) -> bool:
        return self is _Kind.RESULT


@pytest.mark.parametrize(
    ("axis", "expected"),
    [
        (Axis.AXIAL, [(4, 7, 3), (4, 2, 10)]),
        (Axis.CORONAL, [(7, 4, 3), (2, 4, 10)]),
        (Axis.SAGITTAL, [(7, 3, 4), (2, 10, 4)]),
    ],
)
def test_clicked_voxels_are_array_indices_of_the_points(axis, expected):
    prompts = PromptSession()
    prompts.addPoint(_at(3.4, 6.6, axis=axis), True)
    prompts.addPoint(_at(9.6, 2.2, axis=axis), False)
    prompts.setBox(_at(0.0, 0.0, axis=axis), _at(5.0, 5.0, axis=axis))  # a box clicks no voxel
    assert prompts.clickedVoxels() == expected


@dataclass
class _Message:
    request_id: int
    kind: _Kind


def test_tracker_drops_answers_nobody_wants():
    tracker = RequestTracker()
    tracker.track(1, "preview", context="revision 1")
    tracker.track(2, "preview", context="revision 2")  # supersedes 1
    tracker.track(3, "propagation")
    assert tracker.forget("propagation") == 3
    tracker.track(4, "propagation")
    messages = [
        _Message(1, _Kind.RESULT),
        _Message(2, _Kind.RESULT),
        _Message(3, _Kind.RESULT),
        _Message(4, _Kind.SLICE),
        _Message(4, _Kind.RESULT),
        _Message(4, _Kind.RESULT),
    ]
    delivered = [
        (tracked.purpose, tracked.context, message.request_id) for tracked, message in tracker.wanted(messages)
    ]
    # Only the newest preview, and the propagation until its final message.
    assert delivered == [("preview", "revision 2", 2), ("propagation", None, 4), ("propagation", None, 4)]
    assert tracker.pending("preview") is None and tracker.pending("propagation") is None
    tracker.track(5, "model")
    assert tracker.forgetAll() == [5]
    assert list(tracker.wanted([_Message(5, _Kind.RESULT)])) == []
    assert tracker.pending("model") is None
