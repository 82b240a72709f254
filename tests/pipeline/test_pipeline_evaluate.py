"""``evaluate_clip``'s floors and input-view scores, checked by hand: the "nearest context frame"
floor against an independent PSNR of the images it names, its choice of frame (ties to the
earlier) and of camera (nearest centre for cameras that are not context cameras), and the context
views rendered back against a render made here with ``splatnet.render``. Uses the untrained model
file from conftest at a small size: these tests check the bookkeeping, not the model."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from splatnet.clip import Clip
from splatnet.clip.split import split_views
from splatnet.pipeline.evaluate import evaluate_clip, nearest_context_views

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "sample_clip"
pytestmark = pytest.mark.skipif(not SAMPLE.is_dir(), reason="bundled sample clip missing")
SIZE = (64, 112)


def psnr_np(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two images in [0, 1], written out here (not splatnet.metrics)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * math.log10(1.0 / mse)


def _render_with_sky(rec, cam) -> torch.Tensor:
    """``splatnet.render`` of a reconstruction into one camera, its sky composited behind,
    clamped: ``[H, W, 3]``."""
    import splatnet
    from splatnet.cameras import Cameras

    with torch.no_grad():
        out = splatnet.render(rec.gaussians, cam)
        rgb = out.rgb[0]
        if rec.sky is not None:
            batched = Cameras(cam.K[None], cam.cam_to_world[None], cam.width, cam.height)
            rgb = rgb + (1 - out.alpha[0]) * rec.sky.render(batched)[0, 0]
    return rgb.clamp(0, 1)


@pytest.fixture(scope="module")
def clip() -> Clip:
    return Clip.load(SAMPLE)


@pytest.fixture(scope="module")
def model(model_file: Path):
    from splatnet.io.checkpoint import load_model

    return load_model(model_file)


@pytest.fixture(scope="module")
def report(clip: Clip, model) -> dict:
    """Held-out middle frame (1) of the 3-frame sample clip; two variants: the network's own
    Gaussians unchanged, and two refinement steps."""
    from splatnet.optimization import refine

    torch.manual_seed(0)
    return evaluate_clip(clip, model, holdout_frames=[1], size=SIZE, variants={
        "unchanged": lambda g, views, bg: g,
        "refine 2": lambda g, views, bg: refine(g, views, 2, backgrounds=bg)})


def test_nearest_context_floor_is_the_earlier_neighbour_scored_by_hand(clip: Clip, report: dict):
    # Frames 0 and 2 are 0.1 s either side of the held-out frame 1: the tie goes to frame 0.
    assert clip.timestamps.tolist() == pytest.approx([0.0, 0.1, 0.2])
    assert len(report["per_view"]) == len(clip.rig_camera_names) == 6
    floors = []
    for r in report["per_view"]:
        near = r["nearest_context"]
        assert r["frame"] == 1 and near["frame"] == 0 and near["camera"] == r["camera"]
        held = clip.views(frames=[1], cameras=[r["camera"]], size=SIZE).images[0].numpy()
        ctx = clip.views(frames=[0], cameras=[r["camera"]], size=SIZE).images[0].numpy()
        expect = psnr_np(ctx, held)
        assert near["psnr"] == pytest.approx(expect, abs=1e-3)
        assert 0 < near["ssim"] < 1
        floors.append(expect)
    assert report["nearest_context"]["psnr"] == pytest.approx(sum(floors) / len(floors), abs=1e-3)
    assert report["nearest_context"]["ssim"] == pytest.approx(
        sum(r["nearest_context"]["ssim"] for r in report["per_view"]) / 6)


def test_context_views_rendered_back_match_a_render_made_here(clip: Clip, model, report: dict):
    """The report's input-view scores equal splatnet.render of the same reconstruction into each
    context view, the network's sky composited behind and the view's own pixels where the
    reconstruction's ego masks say the camera sees the ego itself, scored with the PSNR above."""
    from splatnet.pipeline.feedforward import reconstruct_clip

    ctx = report["context_views"]
    assert ctx["views"] == len(ctx["per_view"]) == 12  # frames 0 and 2 x 6 rig cameras
    assert all(math.isfinite(r["psnr"]) and math.isfinite(r["ssim"]) for r in ctx["per_view"])
    assert math.isfinite(ctx["psnr"]) and math.isfinite(ctx["ssim"])

    rec = reconstruct_clip(clip, model, frames=[0, 2], size=SIZE)
    assert rec.gaussians.num_gaussians == report["gaussians"]
    views = clip.views(frames=[0, 2], size=SIZE)
    mine = []
    for v in range(len(views)):
        rgb = _render_with_sky(rec, views.cameras[[v]])
        if rec.ego is not None and views.camera_names[v] in rec.ego.masks:
            ego = rec.ego.masks[views.camera_names[v]][..., None]
            rgb = torch.where(ego, views.images[v], rgb)
        mine.append(psnr_np(rgb.numpy(), views.images[v].numpy()))
    got = [r["psnr"] for r in ctx["per_view"]]
    assert [(r["frame"], r["camera"]) for r in ctx["per_view"]] == [
        (int(f), c) for f, c in zip(views.frame_ids, views.camera_names)]
    assert got == pytest.approx(mine, abs=1e-3)
    assert ctx["psnr"] == pytest.approx(sum(mine) / len(mine), abs=1e-3)


def test_variants_are_scored_like_the_network(report: dict):
    same = report["variants"]["unchanged"]
    assert same["psnr"] == pytest.approx(report["psnr"], abs=1e-6)
    assert same["ssim"] == pytest.approx(report["ssim"], abs=1e-6)
    assert same["gaussians"] == report["gaussians"]
    refined = report["variants"]["refine 2"]
    assert math.isfinite(refined["psnr"]) and len(refined["per_view"]) == 6
    assert refined["seconds"] > 0


def test_nearest_context_camera_for_target_and_held_out_cameras(clip: Clip):
    """Cameras that are not context cameras stand in by the context camera nearest in position at
    the chosen frame (here every frame is a context frame, so the same frame)."""
    for split in (split_views(clip), split_views(clip, holdout_cameras=["cam_front", "target_1"])):
        pairs = nearest_context_views(clip, split)
        expect = []
        for f in split.eval_frames:
            for cam in split.eval_cameras:
                centre = clip.cam_to_world(f, cam)[:3, 3]
                d = {c: np.linalg.norm(clip.cam_to_world(f, c)[:3, 3] - centre)
                     for c in split.train_cameras}
                expect.append((f, min(d, key=d.get)))
        assert pairs == expect
        assert all(c in split.train_cameras for _, c in pairs)


def test_nearest_context_frame_by_time_with_ties_to_the_earlier():
    eye = np.eye(4)
    stub = SimpleNamespace(
        timestamps=torch.tensor([0.0, 0.3, 0.5, 0.7 + 1e-9, 0.75, 2.0], dtype=torch.float64),
        cam_to_world=lambda f, c: eye)
    split = SimpleNamespace(train_frames=[0, 1, 3, 5], train_cameras=["a"],
                            eval_frames=[2, 4], eval_cameras=["a"])
    # frame 2 (0.5 s): frames 1 and 3 are 0.2 s away (within 1 µs) -> the earlier, 1;
    # frame 4 (0.75 s): frame 3 is nearest.
    assert nearest_context_views(stub, split) == [(1, "a"), (3, "a")]


def test_camera_masks_drop_their_gaussians_and_are_left_out_of_the_scores(clip: Clip, model,
                                                                         report: dict,
                                                                         tmp_path: Path):
    """A clip whose first camera has a hood mask (bottom half invalid): the network's Gaussians
    from those pixels are gone, and the held-out and floor scores count only valid pixels."""
    import json
    import shutil

    from PIL import Image

    from splatnet.pipeline.feedforward import reconstruct_clip

    dst = tmp_path / "masked"
    shutil.copytree(SAMPLE, dst)
    m = json.loads((dst / "clip.json").read_text())
    cam = m["cameras"][0]
    name, w, h = cam["name"], cam["width"], cam["height"]
    mask = np.full((h, w), 255, np.uint8)
    mask[h // 2:] = 0
    (dst / "masks").mkdir()
    Image.fromarray(mask).save(dst / "masks" / f"{name}.png")
    cam["mask"] = f"masks/{name}.png"
    (dst / "clip.json").write_text(json.dumps(m))
    masked = Clip.load(dst)

    full = reconstruct_clip(clip, model, frames=[0, 2], size=SIZE).gaussians
    cut = reconstruct_clip(masked, model, frames=[0, 2], size=SIZE).gaussians
    # two context frames x half of one camera's cells, less what post-processing drops anyway
    cells = 2 * (SIZE[0] // 2 // model.stride) * (SIZE[1] // model.stride)
    assert 0.5 * cells <= full.num_gaussians - cut.num_gaussians <= cells

    rep = evaluate_clip(masked, model, holdout_frames=[1], size=SIZE)
    assert rep["masked"] is True and report["masked"] is False
    row = next(r for r in rep["per_view"] if r["camera"] == name)
    held = masked.views(frames=[1], cameras=[name], size=SIZE).images[0].numpy()
    ctx = masked.views(frames=[0], cameras=[name], size=SIZE).images[0].numpy()
    top = SIZE[0] // 2
    assert row["nearest_context"]["psnr"] == pytest.approx(psnr_np(ctx[:top], held[:top]), abs=1e-3)



def test_colour_fit_is_each_cameras_least_squares_line_and_renders_go_through_it(clip: Clip,
                                                                                model):
    """With ``model.colour_fit`` on, the reconstruction carries each context camera's gain and
    offset per channel: numpy's least-squares line (with the default prior towards the identity)
    from that camera's context views rendered here (sky behind) to its images; ``splatnet eval``
    renders that camera through them (its context-view PSNR is the corrected render's, scored
    here) and says so in the report."""
    import copy

    from splatnet.models.config import ColourFitConfig
    from splatnet.pipeline.feedforward import reconstruct_clip

    fitted = copy.deepcopy(model)
    fitted.config.colour_fit = ColourFitConfig(enabled=True)
    rec = reconstruct_clip(clip, fitted, frames=[0, 2], size=SIZE)
    assert fitted.config.colour_fit.prior == 0.02
    assert rec.colour_fitted and rec.colour.names == list(clip.rig_camera_names)
    views = clip.views(frames=[0, 2], size=SIZE)
    renders = [_render_with_sky(rec, views.cameras[[v]]).numpy().astype(np.float64)
               for v in range(len(views))]
    expect = {}
    for k, name in enumerate(rec.colour.names):
        rows = [v for v in range(len(views)) if views.camera_names[v] == name]
        assert len(rows) == 2
        for ch in range(3):
            x = np.concatenate([renders[v][..., ch].ravel() for v in rows])
            y = np.concatenate([views.images[v][..., ch].numpy().ravel() for v in rows])
            r = (0.02 * x.size) ** 0.5  # the default prior: two rows more, towards (1, 0)
            a = np.concatenate([np.stack([x, np.ones_like(x)], 1), [[r, 0.0], [0.0, r]]])
            (slope, intercept), *_ = np.linalg.lstsq(a, np.concatenate([y, [r, 0.0]]), rcond=None)
            m = rec.colour.matrices[0, k]
            assert float(m[ch, ch]) == pytest.approx(slope, abs=1e-4)
            assert float(m[ch, 3]) == pytest.approx(intercept, abs=1e-4)
            expect[name, ch] = (slope, intercept)

    rep = evaluate_clip(clip, fitted, holdout_frames=[1], size=SIZE)
    assert rep["colour_fit"] is True
    v = 0
    name = views.camera_names[v]
    corrected = np.stack([renders[v][..., ch] * expect[name, ch][0] + expect[name, ch][1]
                          for ch in range(3)], -1).clip(0, 1)
    assert rep["context_views"]["per_view"][v]["psnr"] == pytest.approx(
        psnr_np(corrected, views.images[v].numpy()), abs=1e-3)


def test_upsample_filter_widens_the_network_gaussians_for_larger_renders(clip: Clip, model):
    """With ``model.upsample_filter`` on, evaluating at twice the network's size renders each
    held-out view from the network's Gaussians with scales ``sqrt(s² + σ²)``, ``σ = sigma ·
    sqrt(1 − 1/r²) · z / f`` (``f`` the camera's focal length at the network's size, ``r`` = 2,
    ``z`` the depth along the view's axis), worked out here in numpy; at the network's own size
    the scores are those of the model without it."""
    import copy

    import splatnet
    from splatnet.cameras import Cameras
    from splatnet.models.config import UpsampleFilterConfig
    from splatnet.pipeline.feedforward import reconstruct_clip

    on = copy.deepcopy(model)
    on.config.upsample_filter = UpsampleFilterConfig(enabled=True, sigma=0.5)
    big = (2 * SIZE[0], 2 * SIZE[1])
    rep = evaluate_clip(clip, on, holdout_frames=[1], size=big, network_size=SIZE)
    assert rep["upsample_filter"] == 0.5
    rec = reconstruct_clip(clip, on, frames=[0, 2], size=SIZE)
    f_net = {n: float(clip.views(frames=[0], cameras=[n], size=SIZE).cameras.K[0, 1, 1])
             for n in clip.rig_camera_names}
    held = clip.views(frames=[1], size=big)
    g = rec.gaussians
    mine = []
    for v in range(len(held)):
        cam = held.cameras[[v]]
        c2w = cam.cam_to_world[0].double().numpy()
        f = f_net[held.camera_names[v]]
        r = float(cam.K[0, 1, 1]) / f
        assert r == pytest.approx(2.0, rel=1e-3)
        z = (g.means.double().numpy() - c2w[:3, 3]) @ c2w[:3, 2]
        blur = 0.5 * math.sqrt(1 - 1 / r ** 2) * np.maximum(z, 1e-3) / f
        scales = torch.from_numpy(np.sqrt(g.scales.double().numpy() ** 2 + blur[:, None] ** 2)).float()
        wide = splatnet.Gaussians(g.means, g.quats, scales, g.opacities, g.sh, check=False)
        with torch.no_grad():
            out = splatnet.render(wide, cam)
            bg = rec.sky.render(Cameras(cam.K[None], cam.cam_to_world[None], cam.width, cam.height))
        rgb = (out.rgb[0] + (1 - out.alpha[0]) * bg[0, 0]).clamp(0, 1)
        mine.append(psnr_np(rgb.numpy(), held.images[v].numpy()))
    assert [r["psnr"] for r in rep["per_view"]] == pytest.approx(mine, abs=2e-3)
    plain = evaluate_clip(clip, model, holdout_frames=[1], size=big, network_size=SIZE)
    assert rep["psnr"] != pytest.approx(plain["psnr"], abs=1e-4)  # it did change the renders
    same = evaluate_clip(clip, on, holdout_frames=[1], size=SIZE)
    base = evaluate_clip(clip, model, holdout_frames=[1], size=SIZE)
    assert same["psnr"] == base["psnr"] and same["context_views"] == base["context_views"]


def test_the_detail_layer_is_built_from_the_context_views_and_added_to_the_held_out_ones(
        clip: Clip, model, report: dict):
    """With ``model.detail_layer`` on, each held-out render is the one without it plus the
    residuals of its camera's context views (their images minus renders made here with
    ``splatnet.render`` and the sky) carried over by a :class:`DetailLayer` built here; the
    Gaussians-only scores, the input-view scores and the floor are those of the model without
    it."""
    import copy

    import splatnet
    from splatnet.pipeline.feedforward import reconstruct_clip
    from splatnet.scene.layers import DetailLayer

    on = copy.deepcopy(model)
    on.config.detail_layer.enabled = True
    rep = evaluate_clip(clip, on, holdout_frames=[1], size=SIZE)
    assert report["detail"] is None and "gaussians_only" not in report
    assert rep["detail"] == {"views": 12, "cameras": sorted(clip.rig_camera_names),
                             "size": list(SIZE), "tolerance": 0.05, "min_alpha": 0.5}
    assert [r["gaussians_only"]["psnr"] for r in rep["per_view"]] == pytest.approx(
        [r["psnr"] for r in report["per_view"]], abs=1e-5)
    assert rep["gaussians_only"]["psnr"] == pytest.approx(report["psnr"], abs=1e-5)
    assert rep["context_views"]["psnr"] == pytest.approx(report["context_views"]["psnr"], abs=1e-5)
    assert rep["nearest_context"] == report["nearest_context"]

    rec = reconstruct_clip(clip, model, frames=[0, 2], size=SIZE)
    assert rec.ego is None and rec.colour is None  # the test model: nothing else on top
    views = clip.views(frames=[0, 2], size=SIZE)
    renders, depths = [], []
    for v in range(len(views)):
        with torch.no_grad():
            depths.append(splatnet.render(rec.gaussians, views.cameras[[v]]).depth[0, ..., 0])
        renders.append(_render_with_sky(rec, views.cameras[[v]]))
    # (a layer keeps its residuals and depths in float16)
    layer = DetailLayer(tuple(views.camera_names), (views.images - torch.stack(renders)).half(),
                        torch.stack(depths).half(), views.cameras.K.double(),
                        views.cameras.cam_to_world.double(), views.cameras.timestamps.double())
    held = clip.views(frames=[1], size=SIZE)
    mine = []
    for v in range(len(held)):
        cam = held.cameras[[v]]
        with torch.no_grad():
            out = splatnet.render(rec.gaussians, cam)
        plain = _render_with_sky(rec, cam)
        pred = layer.apply(plain, out.alpha[0], out.depth[0], cam, held.camera_names[v], 0.1)
        assert float((pred - plain).abs().max()) > 1e-3  # it carried something
        mine.append(psnr_np(pred.numpy(), held.images[v].numpy()))
    assert [r["psnr"] for r in rep["per_view"]] == pytest.approx(mine, abs=2e-3)
