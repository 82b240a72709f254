"""``OUT_DIR/results.jsonl``: one JSON line per clip, appended (and fsynced) as each finishes.

The file is the batch's memory: a re-run reads it to skip finished clips. Lines are only ever
appended, so a crash can tear at most the last one; reading drops a torn last line (and cuts it
off before the next append). A clip may have several lines over several runs; the last one
counts. One run at a time may use an out-dir (a lock file beside the results says which).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from splatnet.errors import FormatError, ValidationError

RESULTS_NAME = "results.jsonl"


class ResultsLog:
    """The results file of one out-dir, opened for one run (see :func:`open_results`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def read(self) -> dict[str, dict[str, Any]]:
        """The last line of each clip (by ``clip`` path). A malformed line that is not a torn
        last line is a :class:`FormatError` naming the file and line."""
        if not self.path.exists():
            return {}
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        if lines[-1]:  # no newline at the end: the last write was torn; forget it
            torn = len(raw) - len(lines[-1])
            with open(self.path, "r+b") as f:
                f.truncate(torn)
            lines = lines[:-1]
        latest: dict[str, dict[str, Any]] = {}
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                line = json.loads(text)
                clip = line["clip"]
            except (ValueError, KeyError, TypeError):
                raise FormatError(f"{self.path} line {number}: not a results line (a JSON "
                                  "object with \"clip\"); move the file away to start afresh"
                                  ) from None
            latest[clip] = line
        return latest

    def append(self, line: dict[str, Any]) -> None:
        """Add one line and make it durable before returning."""
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")
        self._file.write(json.dumps(line, allow_nan=False, separators=(",", ":")) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@contextlib.contextmanager
def open_results(out_dir: Path) -> Iterator[ResultsLog]:
    """The out-dir's :class:`ResultsLog`, held under an exclusive lock (``.batch.lock``) for
    the run: a second run on the same out-dir is refused with one line naming the first."""
    import fcntl

    lock_path = out_dir / ".batch.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise ValidationError(f"--out-dir {out_dir}: another splatnet batch is running on it "
                                  f"({holder}); wait for it or use another --out-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{socket.gethostname()} pid {os.getpid()}\n".encode(), 0)
        log = ResultsLog(out_dir / RESULTS_NAME)
        try:
            yield log
        finally:
            log.close()
    finally:
        os.close(fd)  # releases the lock
