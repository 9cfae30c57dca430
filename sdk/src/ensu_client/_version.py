"""The distribution's version (read by hatchling for the wheel, and by the User-Agent)."""

__version__ = "0.1.0"
