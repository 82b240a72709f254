"""One clip's work, and the worker that does it clip after clip.

:func:`decode` and :func:`reconstruct_to_file` are the per-clip steps of ``splatnet reconstruct``
(the command calls them too); :func:`evaluate_to_file` is ``splatnet eval``'s report for one clip.
:class:`Worker` holds the model (loaded once) and runs clips one after another, decoding the next
clip in a thread while the network runs on this one; the local engine runs it in a process, the
Ray engine as an actor.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from splatnet.batch.job import BatchSpec, ClipTask, frame_selection
from splatnet.errors import ValidationError, one_line


# ------------------------------------------------------------------------------- one clip
def load_clip(clip_or_path):
    """A :class:`~splatnet.clip.Clip` (loaded from its directory, or ``clip.json``, if a path)."""
    from splatnet.clip import Clip
    from splatnet.pipeline.feedforward import _clip_path

    return clip_or_path if isinstance(clip_or_path, Clip) else Clip.load(_clip_path(clip_or_path))


def decode(clip_or_path, model, *, frames=None, cameras=None, size=None, use_lidar: bool = True,
           frames_option: str = "frames", ego_masks: str = "auto"):
    """``(clip, inputs)``: the clip and its decoded network inputs
    (:func:`~splatnet.pipeline.feedforward.prepare_inputs`).

    ``frames``: context frames (a list of indices, ``"A:B"`` or a ``slice``; default all);
    ``cameras``: context cameras (default the rig's); ``size``: ``(H, W)`` the network runs at
    (default :func:`~splatnet.pipeline.feedforward.network_size` of the clip's native size);
    ``use_lidar``, ``ego_masks``: as :func:`~splatnet.pipeline.feedforward.prepare_inputs`;
    ``frames_option`` names ``frames`` in an error (``--frames`` on the command line).
    """
    from splatnet.pipeline.feedforward import default_size, network_size, prepare_inputs

    clip = load_clip(clip_or_path)
    if isinstance(frames, slice):
        ids = list(range(clip.num_frames))[frames]
        if not ids:
            raise ValidationError(f"{frames_option} selects no frame of the clip's {clip.num_frames}")
    else:
        ids = frame_selection(frames, clip.num_frames, frames_option)
    if size is None:
        size = network_size(model, default_size(clip, cameras or clip.rig_camera_names, 1))
    inputs = prepare_inputs(clip, int(getattr(model, "stride", 1)), frames=ids, cameras=cameras,
                            size=tuple(size), use_lidar=use_lidar, ego_masks=ego_masks)
    return clip, inputs


def reconstruct_to_file(clip_path, loaded, model, device, out_path: str | os.PathLike, fmt: str, *,
                        refine: int = 0, use_tracks: bool = True, force: bool = False,
                        progress: Callable[[str], None] | None = None,
                        refine_progress: bool = False) -> dict:
    """The network on one decoded clip (``loaded = decode(...)``), optional refinement, and the
    output written atomically as ``fmt`` (``ply``, ``splat`` or ``scene``).

    Returns the summary ``splatnet reconstruct --json`` prints: clip, output, format, Gaussian
    count, size, views and seconds per stage (``load``, ``network``, ``postprocess``,
    ``refine``, ``write``). ``progress(stage)`` is called as the network, refinement and writing
    start.
    """
    from splatnet.pipeline.feedforward import run_network

    stage = progress or (lambda name: None)
    out_path = Path(out_path)
    clip, inputs = loaded
    stage("network + post-process")
    if fmt == "scene":
        return _scene_to_file(clip_path, clip, inputs, model, device, out_path, refine, use_tracks,
                              force, stage, refine_progress)
    rec = run_network(inputs, model, device, colour_fit=False)  # a file holds no colour matrices
    g = rec.gaussians
    if refine:
        stage("refine")
        from splatnet.optimization import refine as refine_gaussians

        t0 = time.perf_counter()
        views = _context_views(clip, inputs)
        backgrounds = None
        if rec.sky is not None:  # refine against the network's sky, not black
            import torch

            with torch.no_grad():
                backgrounds = rec.sky.render(inputs.cameras.to(g.device))[0].to(views.images)
        g = refine_gaussians(g, views, refine, progress=refine_progress, backgrounds=backgrounds)
        rec.timings["refine"] = time.perf_counter() - t0
    stage("write")
    t0 = time.perf_counter()
    dropped = g.save_splat(out_path) if fmt == "splat" else g.save_ply(out_path)
    rec.timings["write"] = time.perf_counter() - t0
    return {"clip": str(clip_path), "ok": True, "output": str(out_path), "format": fmt,
            "gaussians": g.num_gaussians - dropped, "dropped_non_finite": dropped,
            "size": list(rec.size), "views": len(inputs.frames) * len(inputs.camera_names),
            "ego_masks": None if inputs.ego is None else inputs.ego.summary(),
            "timings": {k: round(v, 4) for k, v in rec.timings.items()}}


def _context_views(clip, inputs):
    """The context views at the network's size, for refinement: with the estimated ego masks
    as their masks when the clip has none (refinement fits the scene's pixels only)."""
    views = clip.views(frames=inputs.frames, cameras=inputs.camera_names, size=inputs.size)
    return views if inputs.ego is None else inputs.ego.mask_views(views)


def _scene_to_file(clip_path, clip, inputs, model, device, out_path: Path, refine: int,
                   use_tracks: bool, force: bool, stage: Callable[[str], None],
                   refine_progress: bool) -> dict:
    """A ``.scene`` output: the network pass split into background and actor groups (refined,
    each actor group in its box frame along its fixed track, with ``refine``), saved."""
    from splatnet.pipeline.scene import scene_from_inputs

    scene = scene_from_inputs(clip, inputs, model, device, use_tracks=use_tracks)
    timings = dict(scene.metadata.get("timings", {}))
    if refine:
        stage("refine")
        from splatnet.optimization import refine_scene

        t0 = time.perf_counter()
        views = _context_views(clip, inputs)
        scene = refine_scene(scene, views, refine, progress=refine_progress)
        timings["refine"] = round(time.perf_counter() - t0, 4)
    stage("write")
    t0 = time.perf_counter()
    scene.save(out_path, force=force)
    timings["write"] = round(time.perf_counter() - t0, 4)
    return {"clip": str(clip_path), "ok": True, "output": str(out_path), "format": "scene",
            "gaussians": scene.num_gaussians, "background": scene.background.num_gaussians,
            "actors": len(scene.actors),
            "actors_without_gaussians": list(scene.metadata.get("actors_without_gaussians", [])),
            "size": list(inputs.size), "views": len(inputs.frames) * len(inputs.camera_names),
            "ego_masks": None if inputs.ego is None else inputs.ego.summary(),
            "timings": timings}


def evaluate_to_file(clip, model, device, out_path: str | os.PathLike, options: dict[str, Any], *,
                     lpips=None, checkpoint: str | None = None, ego_masks: str = "auto") -> dict:
    """``splatnet eval`` for one clip: :func:`~splatnet.pipeline.evaluate.evaluate_clip` with the
    per-clip ``options`` (``holdout_frames``, ``holdout_cameras``, ``size``, ``network_size``),
    the report written atomically as JSON to ``out_path``. Returns the report."""
    from splatnet.io.atomic import atomic_write_text
    from splatnet.pipeline.evaluate import evaluate_clip

    size, net = options.get("size"), options.get("network_size")
    report = evaluate_clip(clip, model, holdout_frames=options.get("holdout_frames"),
                           holdout_cameras=options.get("holdout_cameras"),
                           size=None if size is None else tuple(size),
                           network_size=None if net is None else tuple(net), device=device,
                           lpips=lpips, ego_masks=ego_masks)
    report["checkpoint"] = checkpoint or "default"
    t0 = time.perf_counter()
    atomic_write_text(out_path, json.dumps(report, indent=2) + "\n")
    report["timings"]["write"] = round(time.perf_counter() - t0, 4)
    return report


def eval_metrics(report: dict) -> dict[str, Any]:
    """The per-clip figures a results line keeps from an eval report."""
    m = {"psnr": report["psnr"], "ssim": report["ssim"],
         "lpips": report["lpips"].get("mean"),
         "nearest_context_psnr": report["nearest_context"]["psnr"],
         "context_psnr": report["context_views"]["psnr"],
         "heldout_views": len(report["per_view"])}
    if report.get("gaussians_only") is not None:  # with the detail layer: the Gaussians alone
        m["gaussians_only_psnr"] = report["gaussians_only"]["psnr"]
    depth = report.get("depth_vs_lidar")
    if depth is not None:
        m["depth_abs_rel"] = depth["abs_rel"]
        m["depth_rmse_m"] = depth["rmse_m"]
    return m


def model_digest(model) -> str:
    """A SHA-256 of what a model computes: its config, working size and every tensor of its
    state (names, dtypes, shapes, bytes). Two loads of the same weights give the same digest."""
    import torch

    h = hashlib.sha256()
    cfg = getattr(model, "config", None)
    h.update(json.dumps(asdict(cfg) if is_dataclass(cfg) else repr(cfg), sort_keys=True,
                        default=str).encode())
    h.update(repr(getattr(model, "working_size", None)).encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (Linux and macOS)."""
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1 << 20) if sys.platform == "darwin" else rss / 1024, 1)


# ------------------------------------------------------------------------------- the worker
class Worker:
    """Runs a batch's clips one after another with one model, loaded once.

    ``run(task, upcoming)`` does ``task`` and starts decoding ``upcoming`` (the clip this worker
    is likely to get next) in a thread while the network runs on ``task``; if the next call is
    for another clip, that decode is dropped. A clip's failure is its result line, never an
    exception: only a dead process loses a clip (the engines retry those).
    """

    def __init__(self, spec: BatchSpec, device: str | None = None) -> None:
        import torch

        from splatnet.device import resolve_device
        from splatnet.io.checkpoint import load_model

        torch.set_num_threads(spec.threads)
        self.spec = spec
        self.device = resolve_device(device or spec.device)
        t0 = time.perf_counter()
        self.model = load_model(spec.checkpoint, device=self.device)
        self.lpips = None
        if spec.command == "eval" and spec.lpips_weights:
            from splatnet.metrics.lpips import LPIPS

            self.lpips = LPIPS.from_files(*spec.lpips_weights, net=spec.lpips_net).to(self.device)
        self.load_seconds = time.perf_counter() - t0
        self.digest = model_digest(self.model)
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="splatnet-decode")
        self._ahead: tuple[int, Future] | None = None

    def info(self) -> dict[str, Any]:
        """Who this worker is: ``name`` (host:pid), ``pid``, ``digest`` of its model, seconds
        its model took to load."""
        return {"name": self.name, "pid": os.getpid(), "digest": self.digest,
                "load_seconds": round(self.load_seconds, 4)}

    def run(self, task: ClipTask, upcoming: ClipTask | None = None) -> dict[str, Any]:
        """``task``'s results line (status ``ok`` or ``failed`` with the one-line error)."""
        t0 = time.perf_counter()
        ahead, self._ahead = self._ahead, None
        future = ahead[1] if ahead is not None and ahead[0] == task.index else None
        if future is None:
            if ahead is not None:
                ahead[1].cancel()
            future = self._pool.submit(self._decode, task)
        line: dict[str, Any] = {"clip": task.clip, "output": task.output}
        try:
            loaded = future.result()
        except Exception as exc:  # noqa: BLE001 - a bad clip is its own failed line
            loaded, line = None, self._failed(line, exc)
        if upcoming is not None:  # decode the next clip while the network runs on this one
            self._ahead = (upcoming.index, self._pool.submit(self._decode, upcoming))
        if loaded is not None:
            try:
                line.update(self._work(task, loaded))
                line["status"] = "ok"
            except Exception as exc:  # noqa: BLE001
                line = self._failed(line, exc)
            finally:
                del loaded
        line["worker"] = self.name
        line["seconds"] = round(time.perf_counter() - t0, 4)
        line["peak_rss_mb"] = peak_rss_mb()
        if self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()
        return line

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------ inside
    def _decode(self, task: ClipTask):
        opts = task.effective_options(self.spec)
        if self.spec.command == "eval":  # evaluate_clip decodes its own views: load the clip
            return load_clip(task.clip)
        return decode(task.clip, self.model, frames=opts.get("frames"), cameras=opts.get("cameras"),
                      size=opts.get("size"), use_lidar=self.spec.use_lidar,
                      ego_masks="auto" if self.spec.use_ego_masks else "off")

    def _work(self, task: ClipTask, loaded) -> dict[str, Any]:
        spec = self.spec
        if spec.command == "eval":
            report = evaluate_to_file(loaded, self.model, self.device, task.output,
                                      task.effective_options(spec), lpips=self.lpips,
                                      checkpoint=spec.checkpoint,
                                      ego_masks="auto" if spec.use_ego_masks else "off")
            return {"gaussians": report["gaussians"], "metrics": eval_metrics(report),
                    "timings": report["timings"], "bytes": os.path.getsize(task.output)}
        summary = reconstruct_to_file(task.clip, loaded, self.model, self.device, task.output,
                                      spec.format, refine=spec.refine, use_tracks=spec.use_tracks,
                                      force=task.replace)
        summary.pop("clip"), summary.pop("ok"), summary.pop("output")
        summary["bytes"] = os.path.getsize(task.output)
        return summary

    @staticmethod
    def _failed(line: dict[str, Any], exc: BaseException) -> dict[str, Any]:
        return {"clip": line["clip"], "output": line["output"], "status": "failed",
                "error": one_line(exc)}
