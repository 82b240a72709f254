"""Atomic file writes: a crash never leaves a half-written file under the final name.

Temporary names are ``.NAME.p<pid>h<host>.<random>.tmp`` beside the target. A writer killed
outright (SIGKILL, power loss) cannot remove its temporary; the next write of the same NAME in
that folder removes such leftovers once they are older than :data:`STALE_TEMP_AGE_S` and their
writer (the pid, on this host) is no longer running. Temporaries of older splatnet versions
(``.NAME.<random>.tmp``, no pid) are removed on age alone. A live writer's temporary is never
touched; one written from another host is left alone (its pid means nothing here).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from splatnet.errors import TargetIsDirectoryError

log = logging.getLogger(__name__)

# A leftover temporary must be at least this old (mtime) before it is removed, even when its
# writer's pid is gone: an hour is far longer than any single-file write takes, and the margin
# covers pid namespaces that share a folder and a hostname.
STALE_TEMP_AGE_S = 3600.0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _host_id() -> str:
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _writer_tag(pid: int) -> str:
    """The part of a temporary name that says which process (on which host) made it."""
    return f"p{pid}h{_host_id()}"


# tempfile's random part is 8 characters of [a-z0-9_].
_RANDOM = r"[a-z0-9_]{8}"
_TAGGED_TAIL = re.compile(rf"\.p\d+h[0-9a-f]{{8}}\.{_RANDOM}\.tmp$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError, ValueError):
        return True  # exists but not ours (EPERM), or unknowable: keep its file
    return True


def _is_stale(entry_name: str, name: str, host: str) -> bool:
    """Whether ``entry_name`` is a leftover temporary of an atomic write of ``name`` whose writer
    is gone (age is checked by the caller)."""
    tagged = re.fullmatch(rf"\.{re.escape(name)}\.p(\d+)h([0-9a-f]{{8}})\.{_RANDOM}\.tmp",
                          entry_name)
    if tagged:
        return tagged[2] == host and not _pid_alive(int(tagged[1]))
    legacy = re.fullmatch(rf"\.{re.escape(name)}\.{_RANDOM}\.tmp", entry_name)
    return bool(legacy) and not _TAGGED_TAIL.search(entry_name)


def remove_stale_temps(directory: str | os.PathLike, name: str) -> int:
    """Remove leftover temporaries of atomic writes of ``name`` in ``directory`` (see the module
    docstring for which); returns how many were removed. Never raises for a file it cannot
    remove: cleaning up is a courtesy, not a condition of the write."""
    directory = Path(directory)
    prefix, host, now, removed = f".{name}.", _host_id(), time.time(), 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
            continue
        if not _is_stale(entry.name, name, host):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if now - st.st_mtime < STALE_TEMP_AGE_S:
                continue
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError as exc:
            log.debug("could not remove stale temporary %s: %s", entry.path, exc)
            continue
        removed += 1
    if removed:
        log.info("removed %d stale temporary file(s) of %s left by interrupted writes",
                 removed, directory / name)
    return removed


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{_writer_tag(os.getpid())}."


def _cannot_create(path: Path, exc: OSError) -> OSError:
    """``exc`` from making a temporary beside ``path``, re-worded to name ``path`` (the temporary
    name means nothing to the user)."""
    return type(exc)(f"{path}: cannot write it ({exc.strerror or exc})")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync and rename it onto ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was. A ``path``
    that is a directory is a :class:`TargetIsDirectoryError` (also an ``IsADirectoryError``).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write supports modes 'wb' and 'w', not {mode!r}")
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"{path}: directory {directory} does not exist")
    if path.is_dir():
        raise TargetIsDirectoryError(f"{path}: is a directory; give the path of a file to write")
    remove_stale_temps(directory, path.name)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=directory)
    except OSError as exc:
        raise _cannot_create(path, exc) from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 is for the temporary name only
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        try:
            os.replace(tmp, path)
        except IsADirectoryError:  # made a directory while we wrote
            raise TargetIsDirectoryError(
                f"{path}: is a directory; give the path of a file to write") from None
        except OSError as exc:
            raise _cannot_create(path, exc) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, force: bool = False) -> Iterator[Path]:
    """Fill a temporary directory beside ``path``; on success it replaces ``path`` in one rename.

    An existing ``path`` is an error unless ``force`` (then it is replaced only after the new
    contents are complete). On any exception the temporary directory is removed.
    """
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path}: already exists (pass --force to replace it)")
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path}: exists and is not a directory; refusing to replace it")
    parent = path.parent if str(path.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(parent, path.name)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=parent))
    except OSError as exc:
        raise _cannot_create(path, exc) from None
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 is for the temporary name only
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=parent))
            os.replace(path, old / "dir")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
