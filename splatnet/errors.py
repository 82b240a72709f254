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


def one_line(exc: BaseException) -> str:
    """An exception as the one line the CLI and ``splatnet batch``'s results show: splatnet's own
    messages (and ``ValueError`` / ``OSError``) say what and where; a foreign exception's type is
    part of its story. A ``FileNotFoundError`` names its file."""
    msg = str(exc).strip() or type(exc).__name__
    if isinstance(exc, FileNotFoundError) and exc.filename and str(exc.filename) not in msg:
        msg = f"{exc.filename}: {msg}"
    if not isinstance(exc, (ValueError, OSError, SplatnetError)):
        msg = f"{type(exc).__name__}: {msg}"
    return " ".join(msg.split())
