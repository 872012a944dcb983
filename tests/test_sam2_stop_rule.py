"""The SAM 2 stop rule: object score, empty mask and area collapse."""

from __future__ import annotations

from SAMSegmentLib.propagation.sam2 import SAM2StopRule


def test_a_slice_where_sam2_sees_the_object_is_accepted() -> None:
    assert SAM2StopRule().check(object_score=2.5, area=400, start_area=500) == ""
    assert SAM2StopRule().check(object_score=2.5, area=400, start_area=None) == ""


def test_no_object_stops_even_with_pixels_left() -> None:
    reason = SAM2StopRule().check(object_score=-0.3, area=400, start_area=500)
    assert "no object" in reason and "-0.30" in reason
    assert SAM2StopRule(min_object_score=-1.0).check(object_score=-0.3, area=400, start_area=500) == ""


def test_an_empty_mask_stops() -> None:
    assert SAM2StopRule().check(object_score=3.0, area=0, start_area=500) == "object ended: empty mask"
    assert SAM2StopRule().check(object_score=3.0, area=0, start_area=None) == "object ended: empty mask"


def test_area_collapse_is_measured_against_the_starting_slice() -> None:
    rule = SAM2StopRule(min_area_fraction=0.1)
    assert "area collapsed to 9.0%" in rule.check(object_score=3.0, area=9, start_area=100)
    assert rule.check(object_score=3.0, area=10, start_area=100) == ""
