"""Panels of the SAMSegment module for the research tools; each runs its work on the
shared inference worker and only builds requests and applies results."""
