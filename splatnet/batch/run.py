"""``run_batch``: many clips through reconstruct or eval on a pool of workers, resumably.

Order of work: every option and input is checked, the model is loaded once here (its digest says
which model made each output), the out-dir's ``results.jsonl`` is read and each clip planned (done
and complete: skipped; failed before: skipped unless ``retry_failed``; otherwise run), existing
outputs that the plan would replace are refused without ``force``, and only then do workers start.
Each finished clip is one line in ``results.jsonl`` at once; the summary is written at the end.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from splatnet.batch.engines import ENGINES, LocalPool, Pool, RayPool, WorkerStartError, schedule
from splatnet.batch.inputs import build_tasks, expand_inputs
from splatnet.batch.job import BatchSpec, ClipTask
from splatnet.batch.outputs import exists, output_problem
from splatnet.batch.results import open_results
from splatnet.batch.summary import markdown, summarize
from splatnet.errors import ValidationError


@dataclass
class BatchResult:
    """What :func:`run_batch` did: ``summary`` (also in ``OUT_DIR/summary.json``), the last
    results line of each clip in input order, and ``failed`` (clips not ok)."""

    summary: dict[str, Any]
    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return self.summary["failed"]


def run_batch(inputs: Sequence[str], out_dir: str | os.PathLike, spec: BatchSpec, *,
              engine: str = "local", workers: int = 1, address: str | None = None,
              gpus_per_task: float = 0.0, retries: int = 2, retry_failed: bool = False,
              force: bool = False, progress: bool = True,
              on_dispatch: Callable[[ClipTask, dict[str, Any]], None] | None = None) -> BatchResult:
    """Reconstruct or evaluate (``spec.command``) every clip ``inputs`` name into ``out_dir``.

    Args:
        inputs: clip directories, globs or manifest files (:mod:`splatnet.batch.inputs`).
        out_dir: where outputs (``STEM.FORMAT``, ``STEM.json`` for eval), ``results.jsonl`` and
            ``summary.json`` / ``summary.md`` go; created if missing.
        spec: the shared settings (:class:`~splatnet.batch.job.BatchSpec`).
        engine: ``"local"`` (worker processes here) or ``"ray"`` (actors on a Ray cluster).
        workers: how many workers (each loads the model once and takes clips one after another).
        address: Ray only: ``"auto"`` or ``"HOST:PORT"`` of a running cluster (default: start a
            local one for the run).
        gpus_per_task: Ray only: GPUs each worker reserves (fractions share one).
        retries: how many times a clip is given again after the worker running it died.
        retry_failed: run clips again whose earlier run failed (default: they stay failed).
        force: replace existing outputs that are not this out-dir's complete results of the same
            settings (default: refused before any work).
        progress: a progress bar and failure lines on stderr.
        on_dispatch: ``f(task, worker_info)`` as each clip goes to a worker.
    """
    _check_engine(engine, workers, address, gpus_per_task, retries, spec)
    out = prepare_out_dir(out_dir)
    tasks = build_tasks(expand_inputs(list(inputs), spec.command), spec, out)
    settings = _Settings(spec, engine)

    with open_results(out) as log:
        latest = log.read()
        todo, lines, skipped, failed_earlier = _plan(tasks, latest, settings, retry_failed, force)
        new: list[dict[str, Any]] = []
        t0 = time.perf_counter()
        startup = 0.0
        if todo:
            bar = _bar(len(todo), spec.command, not progress)
            failures = [0]

            def on_result(task: ClipTask, line: dict[str, Any]) -> None:
                line.update(clip=task.clip, output=task.output, settings=settings(task),
                            finished=datetime.datetime.now(datetime.timezone.utc)
                            .isoformat(timespec="seconds"))
                log.append(line)
                lines[task.index] = line
                new.append(line)
                if line["status"] != "ok":
                    failures[0] += 1
                    if progress:
                        bar.write(f"splatnet batch {spec.command}: {task.clip}: error: "
                                  f"{line.get('error')}", file=sys.stderr)
                bar.update(1)
                bar.set_postfix(failed=failures[0], refresh=False)

            pool = _pool(engine, spec, min(workers, len(todo)), address, gpus_per_task)
            try:
                infos = pool.start()
                startup = time.perf_counter() - t0
                _check_same_model(infos, settings.digest)
                schedule(pool, todo, retries=retries, on_result=on_result,
                         on_dispatch=on_dispatch, infos=infos)
            except BaseException:  # Ctrl-C or an error: stop the workers now, mid-clip or not
                pool.close(abort=True)
                raise
            else:
                pool.close()
            finally:
                bar.close()
        wall = time.perf_counter() - t0
        summary = summarize(spec.command, lines, new, skipped=skipped,
                            failed_earlier=failed_earlier, wall_seconds=wall,
                            startup_seconds=startup, engine=engine, workers=min(workers, len(todo))
                            if todo else 0)
        from splatnet.io.atomic import atomic_write_text

        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
        atomic_write_text(out / "summary.md", markdown(summary))
    return BatchResult(summary, lines)


def prepare_out_dir(path: str | os.PathLike) -> Path:
    """``--out-dir``, created if missing (absolute); a file in its place is one clear error."""
    d = Path(os.path.abspath(path))
    if d.exists() and not d.is_dir():
        raise ValidationError(f"--out-dir {path}: is a file, not a directory")
    try:
        d.mkdir(parents=True, exist_ok=True)
    except (NotADirectoryError, FileExistsError):
        raise ValidationError(f"--out-dir {path}: a parent is a file, not a directory") from None
    except OSError as exc:
        raise ValidationError(f"--out-dir {path}: cannot create it ({exc.strerror or exc})") from None
    return d


# ------------------------------------------------------------------------------ the plan
def _plan(tasks: list[ClipTask], latest: dict[str, dict[str, Any]], settings, retry_failed: bool,
          force: bool) -> tuple[list[ClipTask], list[dict[str, Any]], int, int]:
    """``(to run, last line per clip (None where to run), skipped, failed earlier)``; refuses,
    before any work, to replace outputs that are not this out-dir's own."""
    todo: list[ClipTask] = []
    lines: list[Any] = [None] * len(tasks)
    skipped = failed_earlier = 0
    refused: list[tuple[ClipTask, str]] = []
    for t in tasks:
        last = latest.get(t.clip)
        same = (last is not None and last.get("output") == t.output
                and last.get("settings") == settings(t))
        if Path(t.output).is_dir():
            raise ValidationError(f"{t.output}: is a directory, where the output of {t.clip} "
                                  "goes; move it away")
        if same and last.get("status") == "ok":
            problem = output_problem(last)
            if problem is None:
                lines[t.index] = last
                skipped += 1
                continue
            t.replace = True  # this out-dir's own output, damaged since: made again
        elif same and not retry_failed:
            lines[t.index] = last
            failed_earlier += 1
            continue
        elif exists(t.output):
            if not force:
                refused.append((t, _why_not_ours(t, last, settings)))
                continue
            t.replace = True
        todo.append(t)
    if refused:
        t, why = refused[0]
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        raise FileExistsError(f"{t.output}: already exists, {why}{more}; pass --force to replace "
                              "them, or use another --out-dir")
    return todo, lines, skipped, failed_earlier


def _why_not_ours(task: ClipTask, last: dict[str, Any] | None, settings) -> str:
    if last is None or last.get("output") != task.output:
        return "and results.jsonl has no line for it"
    old, new = last.get("settings") or {}, settings(task)
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return f"made with other settings (differing: {', '.join(diff)})"


class _Settings:
    """A clip's settings as its results line records them: what makes two outputs the same."""

    def __init__(self, spec: BatchSpec, engine: str) -> None:
        from splatnet.batch.work import model_digest
        from splatnet.io.checkpoint import load_model

        if engine == "local":  # on a Ray cluster the GPUs are the workers', not this machine's
            from splatnet.device import resolve_device

            resolve_device(spec.device)
        self.digest = model_digest(load_model(spec.checkpoint))
        self.base: dict[str, Any] = {"command": spec.command, "model": self.digest,
                                     "format": spec.format}
        if spec.command == "reconstruct":
            self.base.update(refine=spec.refine, lidar=spec.use_lidar)
            if spec.format == "scene":
                self.base["tracks"] = spec.use_tracks
        elif spec.lpips_weights:  # checked here, before any worker starts
            from splatnet.metrics.lpips import LPIPS

            lp = LPIPS.from_files(*spec.lpips_weights, net=spec.lpips_net)
            self.base["lpips"] = [lp.net, *[os.path.basename(s) for s in lp.sources]]
        if not spec.use_ego_masks:  # (absent when on: records of earlier batches stay valid)
            self.base["ego_masks"] = False
        self.spec = spec

    def __call__(self, task: ClipTask) -> dict[str, Any]:
        return {**self.base, "options": task.effective_options(self.spec)}


def _check_same_model(infos: list[dict[str, Any]], digest: str) -> None:
    for info in infos:
        if info.get("digest") != digest:
            raise WorkerStartError(f"worker {info.get('name')} loaded another model than this "
                                   "process did (did the checkpoint change meanwhile?)")


# ------------------------------------------------------------------------------ engines
def _check_engine(engine: str, workers: int, address: str | None, gpus: float, retries: int,
                  spec: BatchSpec) -> None:
    if engine not in ENGINES:
        raise ValidationError(f"--engine: expected {' or '.join(ENGINES)}, got {engine!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValidationError(f"--workers: expected an integer >= 1, got {workers!r}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValidationError(f"--retries: expected an integer >= 0, got {retries!r}")
    if not (isinstance(gpus, (int, float)) and 0 <= gpus <= 1024):
        raise ValidationError(f"--gpus-per-task: expected a number >= 0, got {gpus!r}")
    if engine == "local" and address is not None:
        raise ValidationError("--address joins a Ray cluster: it needs --engine ray")
    if engine == "local" and gpus:
        raise ValidationError("--gpus-per-task reserves GPUs on a Ray cluster: it needs --engine "
                              "ray (local workers use --device)")
    if engine == "ray" and spec.device.startswith("cuda") and not gpus:
        raise ValidationError("--engine ray --device cuda needs --gpus-per-task (Ray hides the "
                              "GPUs from workers that reserve none)")
    if engine == "ray" and gpus and not spec.device.startswith("cuda"):
        raise ValidationError(f"--gpus-per-task {gpus:g} reserves GPUs the workers would not use: "
                              "add --device cuda")


def _pool(engine: str, spec: BatchSpec, workers: int, address: str | None, gpus: float) -> Pool:
    if engine == "ray":
        return RayPool(spec, workers, address=address, gpus_per_task=gpus)
    return LocalPool(spec, workers)


def _bar(total: int, command: str, disable: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=f"batch {command}", unit="clip", file=sys.stderr,
                dynamic_ncols=True, disable=disable)
