"""Reconstruction into a 4D :class:`~splatnet.scene.Scene`: one network pass, then the network's
Gaussians split into a background and one group per tracked actor (docs/scenes.md).

With actor tracks (``Clip.actors``), every Gaussian predicted from a view of frame ``f`` that lies
inside an actor's box at frame ``f`` (grown by ``box_margin`` metres) goes to that actor,
expressed in the actor's box frame; the same car seen at several context frames lands in one
group, where post-processing merges the duplicates. The rest is the background. Without tracks
(or ``use_tracks=False``) the scene is the background alone, with the network's per-Gaussian
velocities as :func:`splatnet.reconstruct` gives them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch import nn

from splatnet.errors import ValidationError
from splatnet.gaussians import Gaussians
from splatnet.scene.layers import DETAIL_BOX_MARGIN, check_box_margin


def reconstruct_scene(
    clip_or_path,
    model: nn.Module | None = None,
    *,
    frames: Sequence[int] | None = None,
    cameras: Sequence[str] | None = None,
    size: tuple[int, int] | None = None,
    device: str | torch.device | None = None,
    use_tracks: bool = True,
    box_margin: float = DETAIL_BOX_MARGIN,
    detail: bool = True,
    progress=None,
):
    """Reconstruct a clip into a :class:`~splatnet.scene.Scene` in one forward pass.

    Args:
        clip_or_path: a :class:`~splatnet.clip.Clip` or the path of a clip directory.
        model: a loaded network (default: the shipped checkpoint).
        frames, cameras, size, device: as :func:`splatnet.reconstruct` (context frames, rig
            cameras, the network's input size, ``"cpu"``/``"cuda"``).
        use_tracks: split the Gaussians by the clip's actor tracks (when it has any).
        box_margin: metres an actor's box is grown by when collecting its Gaussians (the
            network's depth is not exact at object boundaries), and so when the detail layer
            finds the pixels it carries with the actor.
        detail: keep the detail of the context images that the Gaussians miss
            (:attr:`Scene.detail`) when the model has ``detail_layer`` on.
        progress: optional ``f(stage_name)`` called as each stage starts.

    Returns:
        The scene: background (world frame), actors (box frames, tracks from the clip), the
        network's sky, the context cameras' colour matrices (fitted to their images when the
        model has ``colour_fit`` on, :attr:`Scene.colour`), the ego's own body in the cameras
        that see it (:attr:`Scene.ego`: the clip's camera masks or estimated ones, as
        :func:`splatnet.reconstruct`), the detail of the context images that the Gaussians miss
        (:attr:`Scene.detail`, when the model has ``detail_layer`` on: at the network's input
        size, and a finer level at the clip's size by :func:`detail_size` when that is
        larger), the clip's rig, frame times and ego poses; ``metadata`` says where it came
        from (clip, context frames, size, timings, actors without Gaussians, ``colour``:
        ``"fitted"`` or ``"network"`` when it has matrices).
    """
    from splatnet.clip import Clip
    from splatnet.device import resolve_device
    from splatnet.pipeline.feedforward import _clip_path, default_size, network_size, prepare_inputs

    _check_options(use_tracks, box_margin, detail)

    def stage(name: str) -> None:
        if progress is not None:
            progress(name)

    dev = resolve_device(device)
    clip = clip_or_path if isinstance(clip_or_path, Clip) else Clip.load(_clip_path(clip_or_path))
    if model is None:
        from splatnet.io.checkpoint import load_model

        model = load_model(device=dev)
    stage("decode context views")
    names = list(clip.rig_camera_names) if cameras is None else list(cameras)
    if size is None:
        size = network_size(model, default_size(clip, names, 1))
    inputs = prepare_inputs(clip, int(getattr(model, "stride", 1)), frames=frames, cameras=names,
                            size=size)
    return scene_from_inputs(clip, inputs, model, dev, use_tracks=use_tracks,
                             box_margin=box_margin, detail=detail, progress=progress)


def scene_from_inputs(clip, inputs, model: nn.Module, device=None, *, use_tracks: bool = True,
                      box_margin: float = DETAIL_BOX_MARGIN, detail: bool = True, progress=None):
    """:func:`reconstruct_scene` on decoded inputs (:func:`~splatnet.pipeline.feedforward.
    prepare_inputs` of ``clip``): the network pass, the split by tracks, post-processing."""
    from splatnet import __version__
    from splatnet.models.postprocessing import PostprocessConfig, cap, merge_duplicates, prune
    from splatnet.pipeline.feedforward import enabled_option, forward, upsample_filter_of
    from splatnet.scene import Rig, Scene, SceneActor

    _check_options(use_tracks, box_margin, detail)

    def stage(name: str) -> None:
        if progress is not None:
            progress(name)

    stage("network")
    out, seconds = forward(inputs, model, device)
    timings: dict[str, float] = {"load": inputs.load_seconds, "network": seconds}

    stage("split and post-process")
    t0 = time.perf_counter()
    raw = Gaussians(**{k: v[0] for k, v in out.gaussians.fields().items()}, check=False)
    n_views = len(inputs.frames) * len(inputs.camera_names)
    per_view = raw.num_gaussians // n_views
    # Views are frame-major (prepare_inputs): the Gaussians of view v come from frame v // cams.
    view_frame = torch.tensor(inputs.frames, device=raw.device).repeat_interleave(
        len(inputs.camera_names) * per_view)
    cfg = getattr(getattr(model, "config", None), "postprocess", None) or PostprocessConfig()

    owner = torch.full((raw.num_gaussians,), -1, dtype=torch.long, device=raw.device)
    actors = list(clip.actors) if use_tracks else []
    best = torch.full((raw.num_gaussians,), float("inf"), dtype=torch.float64, device=raw.device)
    for ai, a in enumerate(actors):
        for j, f in enumerate(a.frames.tolist()):
            sel = view_frame == f
            if not bool(sel.any()):
                continue
            T = torch.from_numpy(a.box_to_world[j]).to(raw.device)
            local = (raw.means.to(torch.float64) - T[:3, 3]) @ T[:3, :3]
            half = torch.tensor(a.size, dtype=torch.float64, device=raw.device) / 2 + box_margin
            inside = sel & (local.abs() <= half).all(-1)
            # a Gaussian inside two (grown) boxes goes to the box whose centre is nearer
            dist = (local / half).norm(dim=-1)
            take = inside & (dist < best)
            owner[take] = ai
            best[take] = dist[take]

    groups: list[SceneActor] = []
    empty: list[str] = []
    for ai, a in enumerate(actors):
        parts = []
        for j, f in enumerate(a.frames.tolist()):
            sel = (owner == ai) & (view_frame == f)
            if bool(sel.any()):
                g = raw[sel]
                g = Gaussians(g.means, g.quats, g.scales, g.opacities, g.sh, check=False)  # static
                inv = torch.linalg.inv(torch.from_numpy(a.box_to_world[j]))
                parts.append(g.transform(inv))
        g = Gaussians.cat(parts) if parts else None
        if g is not None:
            g = prune(g, cfg.min_opacity)
            if cfg.merge and g.num_gaussians > 1:
                g = merge_duplicates(g, cfg.merge_cell)
        if g is None or g.num_gaussians == 0:
            empty.append(a.id)
            continue
        groups.append(SceneActor.from_actor(a, clip.timestamps.numpy(), g))
    background = raw[owner < 0]
    background = prune(background, cfg.min_opacity)
    if cfg.merge and background.num_gaussians > 1:
        background = merge_duplicates(background, cfg.merge_cell)
    background = cap(background, max(1, cfg.max_gaussians - sum(g.gaussians.num_gaussians
                                                                  for g in groups)))
    timings["postprocess"] = time.perf_counter() - t0

    sky = out.sky.detach() if getattr(out, "sky", None) is not None else None
    src = clip.path
    meta = {
        "source_clip": str(src),
        "splatnet_version": __version__,
        "context_frames": list(inputs.frames),
        "network_size": list(inputs.size),
        "tracks_used": bool(actors),
        "box_margin": float(box_margin),
        "actors_without_gaussians": empty,
        "timings": {k: round(v, 4) for k, v in timings.items()},
    }
    scene = Scene(background=background, actors=groups,
                  rig=Rig.from_clip(clip, inputs.camera_names),
                  frame_times=clip.timestamps.numpy(),
                  ego_to_world=clip.ego_to_world.numpy(), sky=sky, ego=inputs.ego,
                  upsample=upsample_filter_of(model, inputs), metadata=meta)
    colour = _context_colour(scene, inputs, out, model, stage)
    if colour is not None:
        matrices, how, seconds = colour
        meta["colour"] = how
        if seconds is not None:
            meta["timings"]["colour_fit"] = round(seconds, 4)
        scene = scene.replace(colour=matrices, metadata=meta)
    detail_cfg = enabled_option(model, "detail_layer") if detail else None
    if detail_cfg is not None:
        stage("detail layer")
        t0 = time.perf_counter()
        from splatnet.pipeline.feedforward import default_size

        size = detail_size(default_size(clip, inputs.camera_names, 1), tuple(inputs.size))
        finer = None
        if size != tuple(inputs.size):  # the context images again, larger than the network saw
            views = clip.views(frames=inputs.frames, cameras=inputs.camera_names, size=size)
            finer = (views.cameras, views.images)
        scene = scene.with_detail(inputs.view_cameras(), inputs.images[0].permute(0, 2, 3, 1),
                                  tolerance=detail_cfg.tolerance, min_alpha=detail_cfg.min_alpha,
                                  finer=finer, box_margin=box_margin)
        meta["timings"]["detail_layer"] = round(time.perf_counter() - t0, 4)
        scene = scene.replace(metadata=meta)
    return scene


#: A scene's detail layer has a finer level at the clip's native size when that is at most
#: DETAIL_NATIVE_SCALE times the network's input size a side (a replay at the native size then
#: takes residuals of its very size: PandaSet's 270x480, 2.1x, replays 0.3-0.4 dB better than
#: from a level at 2x), else at DETAIL_MAX_SCALE times the network's size (a 1936-pixel-wide
#: camera at its size would make a file of hundreds of MB; a level at 2.5x was no better there
#: than at 2x: DGP scene_02 17.72 vs 17.70 dB). docs/benchmarks.md, "Tracked actors carry ...".
DETAIL_NATIVE_SCALE = 2.5
DETAIL_MAX_SCALE = 2.0


def detail_size(native: tuple[int, int], network: tuple[int, int]) -> tuple[int, int]:
    """The size of a scene's finer detail level: ``native`` itself when it is at most
    :data:`DETAIL_NATIVE_SCALE` times ``network`` a side, else ``native`` scaled down (aspect
    kept) to at most :data:`DETAIL_MAX_SCALE` times ``network`` a side; never below ``network``."""
    (H, W), (h, w) = native, network
    if H <= DETAIL_NATIVE_SCALE * h and W <= DETAIL_NATIVE_SCALE * w:
        return max(h, H), max(w, W)
    scale = min(1.0, DETAIL_MAX_SCALE * h / H, DETAIL_MAX_SCALE * w / W)
    return max(h, round(H * scale)), max(w, round(W * scale))


def _context_colour(scene, inputs, out, model: nn.Module, stage):
    """The context cameras' colour matrices for ``scene``: the network's when it predicts them
    (``model.colour_affine``), else fitted to the context images when the model has
    ``colour_fit`` on (the scene rendered into its context views, as it will be shown); as
    ``({name: [3, 4]}, "network" | "fitted", fit seconds | None)``, or None."""
    learned = getattr(out, "colour", None)
    if learned is not None:
        mats = learned.matrices[0].detach().to("cpu", torch.float64).numpy()
        return dict(zip(learned.names, mats)), "network", None
    from splatnet.pipeline.feedforward import colour_of_renders, enabled_option

    fit_cfg = enabled_option(model, "colour_fit")
    if fit_cfg is None:
        return None

    stage("colour fit")
    t0 = time.perf_counter()
    with torch.no_grad():
        rgb = scene.render(inputs.view_cameras(), colour=False, ego=False, upsample=False).rgb
    fitted = colour_of_renders(rgb, inputs, prior=fit_cfg.prior)
    mats = fitted.matrices[0].numpy()
    return dict(zip(fitted.names, mats)), "fitted", time.perf_counter() - t0


def _check_options(use_tracks: object, box_margin: object, detail: object = True) -> None:
    if not isinstance(use_tracks, bool):
        raise ValidationError(f"use_tracks: expected True or False, got {use_tracks!r}")
    if not isinstance(detail, bool):
        raise ValidationError(f"detail: expected True or False, got {detail!r}")
    check_box_margin("box_margin", box_margin)
