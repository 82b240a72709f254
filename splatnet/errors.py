"""Exceptions raised by splatnet. Every message names the input and the problem."""

from __future__ import annotations


class SplatnetError(Exception):
    """Base class of splatnet's own errors; the CLI prints these as one line."""


class ValidationError(SplatnetError, ValueError):
    """An input has the wrong shape, dtype, range or content."""


class FormatError(SplatnetError, ValueError):
    """A file (PLY, clip manifest, checkpoint, image) is malformed or of an unsupported variant."""


class BackendUnavailableError(SplatnetError, RuntimeError):
    """A requested backend (CUDA kernels, gsplat) is not available in this installation."""


class TargetIsDirectoryError(SplatnetError, IsADirectoryError):
    """The path to write a file to is an existing directory."""
