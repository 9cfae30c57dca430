"""Errors of the sandbox generator: each message tells the operator what to do."""

from __future__ import annotations


class SandboxError(Exception):
    """The generation cannot run; the message says why and how to fix it."""


class FontMissingError(SandboxError):
    """A TrueType font the PDFs need is not installed."""


class DatabaseNotReadyError(SandboxError):
    """The database has no tables: the migrations have not been applied."""


class RenderError(SandboxError):
    """A document could not be rendered faithfully (a character outside the fonts' subset)."""
