"""Test helpers that are neither fixtures nor tests (a TCP proxy for failure tests)."""
