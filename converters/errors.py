"""Errors raised by the checkpoint converters (all are ValueErrors, so callers may catch either)."""
from __future__ import annotations


class ConversionError(ValueError):
    """A checkpoint cannot be converted: corrupt, unsupported or not what was expected."""


class UnsafePickleError(ConversionError):
    """A pickle asked for a global outside the allow-list; nothing from it was executed."""
