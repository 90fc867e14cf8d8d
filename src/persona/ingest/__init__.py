"""Ingest: Segment-compatible validation, normalization and acknowledged appends to the log."""
