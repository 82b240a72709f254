"""``reconstruct_scene`` / ``splatnet reconstruct -o NAME.scene``: the network's Gaussians split by
the clip's actor tracks, checked against a split computed here from the raw network output with
plain numpy box tests, and the CLI's ``.scene`` path."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from splatnet.clip import Clip
from splatnet.errors import ValidationError
from splatnet.pipeline.feedforward import prepare_inputs, reconstruct_clip
from splatnet.pipeline.scene import reconstruct_scene

SIZE = (64, 112)
MARGIN = 0.25


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Clip:
    pytest.importorskip("open3d")
    from splatnet.clip.synth.pipeline import generate

    path = generate(tmp_path_factory.mktemp("scene") / "clip", 1000, cameras=4, frames=3,
                    size=SIZE)
    return Clip.load(path)


@pytest.fixture(scope="module")
def model():
    from splatnet.io.checkpoint import load_model

    m = load_model()  # the shipped model: real depths, so boxes hold Gaussians
    m.config.postprocess.merge = False   # keep every Gaussian countable
    m.config.postprocess.min_opacity = 0.0
    return m


def test_actor_groups_are_the_gaussians_inside_their_boxes(clip: Clip, model):
    torch.manual_seed(0)
    scene = reconstruct_scene(clip, model, frames=[0, 2], size=SIZE, box_margin=MARGIN)
    inputs = prepare_inputs(clip, model.stride, frames=[0, 2], size=SIZE)
    with torch.no_grad():
        out = model(inputs.images, inputs.cameras, inputs.lidar)
    means = out.gaussians.means[0].double().numpy()
    per_frame = means.shape[0] // 2
    frame_of = np.repeat([0, 2], per_frame)
    # the split, by hand: nearest (normalised) grown box containing the Gaussian at its frame
    best = np.full(len(means), np.inf)
    owner = np.full(len(means), -1)
    for ai, a in enumerate(clip.actors):
        for j, f in enumerate(a.frames.tolist()):
            if f not in (0, 2):
                continue
            T = a.box_to_world[j]
            local = (means - T[:3, 3]) @ T[:3, :3]
            half = np.asarray(a.size) / 2 + MARGIN
            inside = (frame_of == f) & np.all(np.abs(local) <= half, axis=1)
            d = np.linalg.norm(local / half, axis=1)
            take = inside & (d < best)
            owner[take], best[take] = ai, d[take]
    assert (owner >= 0).sum() > 50, "the test clip should have Gaussians on cars"
    expect_ids = {clip.actors[i].id for i in set(owner[owner >= 0].tolist())}
    assert set(scene.actors) == expect_ids
    assert sorted(scene.metadata["actors_without_gaussians"]) == sorted(
        a.id for a in clip.actors if a.id not in expect_ids)
    times = clip.timestamps.numpy()
    for ai, a in enumerate(clip.actors):
        if a.id not in scene.actors:
            continue
        group = scene.actors[a.id]
        assert group.gaussians.velocities is None  # a group is static in its box frame
        # back in the world at each source frame, the group is exactly those Gaussians
        want, got, start = [], [], 0
        for f in (0, 2):
            sel = (owner == ai) & (frame_of == f)
            want.append(means[sel])
            n = int(sel.sum())
            pose = a.pose_at_frame(f)
            box = group.gaussians.means[start:start + n].double().numpy()
            got.append(box @ pose[:3, :3].T + pose[:3, 3])
            np.testing.assert_allclose(group.pose_at(times[f]), pose, atol=1e-12)
            start += n
        assert start == group.gaussians.num_gaussians
        np.testing.assert_allclose(np.concatenate(got), np.concatenate(want), atol=2e-4)
    assert scene.background.num_gaussians == int((owner < 0).sum())


def test_without_tracks_the_scene_is_the_plain_reconstruction(clip: Clip, model):
    scene = reconstruct_scene(clip, model, frames=[0, 2], size=SIZE, use_tracks=False)
    plain = reconstruct_clip(clip, model, frames=[0, 2], size=SIZE).gaussians
    assert len(scene.actors) == 0 and scene.metadata["tracks_used"] is False
    for k, v in plain.fields().items():
        assert torch.equal(getattr(scene.background, k), v), k
    np.testing.assert_array_equal(scene.frame_times, clip.timestamps.numpy())
    np.testing.assert_array_equal(scene.ego_to_world, clip.ego_to_world.numpy())
    assert scene.rig.names == clip.rig_camera_names and scene.sky is not None


def test_the_scene_carries_each_context_cameras_fitted_colour(clip: Clip, model):
    """With ``model.colour_fit`` on (the shipped model file), the scene holds each context
    camera's gain and offset per channel: numpy's least-squares line, with the prior's two rows,
    from the scene's own renders of its context views (``colour=False``) to their images. Its
    renders of those cameras go through them; refining the scene drops them."""
    from splatnet.optimization.scene import refine_scene

    assert model.config.colour_fit.enabled and model.config.colour_fit.prior == 0.02
    scene = reconstruct_scene(clip, model, frames=[0, 2], size=SIZE)
    assert list(scene.colour) == list(clip.rig_camera_names)
    assert scene.metadata["colour"] == "fitted" and "colour_fit" in scene.metadata["timings"]
    inputs = prepare_inputs(clip, model.stride, frames=[0, 2], size=SIZE)
    views = inputs.view_cameras()
    with torch.no_grad():
        plain = scene.render(views, colour=False, detail=False).rgb.clamp(0, 1).double().numpy()
        seen = scene.render(views, detail=False).rgb.double().numpy()
    images = inputs.images[0].permute(0, 2, 3, 1).double().numpy()
    valid = (np.ones(images.shape[:3], bool) if inputs.valid is None
             else inputs.valid[0, :, 0].numpy().astype(bool))
    for name in clip.rig_camera_names:
        rows = [v for v, n in enumerate(views.names) if n == name]
        assert len(rows) == 2
        m = scene.colour[name]
        for ch in range(3):
            x = np.concatenate([plain[v][..., ch][valid[v]] for v in rows])
            y = np.concatenate([images[v][..., ch][valid[v]] for v in rows])
            r = (0.02 * x.size) ** 0.5
            a = np.concatenate([np.stack([x, np.ones_like(x)], 1), [[r, 0.0], [0.0, r]]])
            (slope, intercept), *_ = np.linalg.lstsq(a, np.concatenate([y, [r, 0.0]]), rcond=None)
            assert m[ch, ch] == pytest.approx(slope, abs=1e-4)
            assert m[ch, 3] == pytest.approx(intercept, abs=1e-4)
            assert m[ch, (ch + 1) % 3] == 0.0
        v = rows[0]
        want = plain[v] @ m[:, :3].T + m[:, 3]
        np.testing.assert_allclose(seen[v], want, atol=1e-5)
    refined = refine_scene(scene, clip.views(frames=[0, 2], size=SIZE), 2)
    assert refined.colour == {} and "colour" not in refined.metadata


def test_a_model_that_predicts_colour_matrices_gives_the_scene_its_own(clip: Clip):
    """With ``model.colour_affine`` (a network that predicts each context camera's matrix), the
    scene keeps the network's matrices as they come out of its forward pass; nothing is fitted."""
    from splatnet.io.checkpoint import build_model

    torch.manual_seed(0)
    small = build_model("splatnet", {
        "encoder": {"stem_dim": 8, "mid_dim": 8, "low_dim": 8, "matching_dim": 8, "context_dim": 8},
        "cost_volume": {"num_candidates": 8, "unet_dims": [8, 8, 8]}, "head": {"hidden_dim": 8},
        "sky": {"hidden_dim": 8}, "colour_affine": {"enabled": True},
        "colour_fit": {"enabled": True}}).eval()
    with torch.no_grad():  # away from the identity it starts at
        small.colour_affine.mlp[-1].weight.normal_(0, 0.05)
        small.colour_affine.mlp[-1].bias.normal_(0, 0.05)
    scene = reconstruct_scene(clip, small, frames=[0, 2], size=SIZE)
    inputs = prepare_inputs(clip, small.stride, frames=[0, 2], size=SIZE)
    with torch.no_grad():
        out = small(inputs.images, inputs.cameras, inputs.lidar)
    assert scene.metadata["colour"] == "network" and "colour_fit" not in scene.metadata["timings"]
    assert list(scene.colour) == out.colour.names == list(clip.rig_camera_names)
    for k, name in enumerate(out.colour.names):
        want = out.colour.matrices[0, k].double().numpy()
        np.testing.assert_allclose(scene.colour[name], want, atol=1e-6)
        assert np.abs(want - np.eye(3, 4)).max() > 1e-3


def test_the_scene_keeps_the_models_upsample_filter(clip: Clip, model):
    import copy

    from splatnet.models.config import UpsampleFilterConfig
    from splatnet.optimization.scene import refine_scene

    on = copy.deepcopy(model)
    on.config.upsample_filter = UpsampleFilterConfig(enabled=True, sigma=0.3)
    scene = reconstruct_scene(clip, on, frames=[0, 2], size=SIZE)
    views = clip.views(frames=[0], size=SIZE)  # each rig camera at the network's size
    assert scene.upsample.sigma == 0.3
    assert scene.upsample.focals == pytest.approx(
        {n: float(views.cameras.K[v, 1, 1]) for v, n in enumerate(views.camera_names)})
    assert refine_scene(scene, clip.views(frames=[0, 2], size=SIZE), 1).upsample is None
    off = copy.deepcopy(model)
    off.config.upsample_filter = UpsampleFilterConfig(enabled=False)
    assert reconstruct_scene(clip, off, frames=[0, 2], size=SIZE).upsample is None


def test_the_scene_keeps_a_detail_layer_of_its_context_views(clip: Clip, model):
    """With ``model.detail_layer`` on, the scene keeps one view per context frame and rig camera
    at the network's size: the recorded image minus the scene's own render of it (rendered here
    without the layer), with that render's depth; ``detail=False`` or the option off: none."""
    import copy

    on = copy.deepcopy(model)
    on.config.detail_layer.enabled = True
    on.config.detail_layer.tolerance = 0.08
    scene = reconstruct_scene(clip, on, frames=[0, 2], size=SIZE)
    d = scene.detail
    views = clip.views(frames=[0, 2], size=SIZE)
    assert d.names == tuple(views.camera_names) and d.size == SIZE and d.tolerance == 0.08
    assert torch.equal(d.times, views.cameras.timestamps.double())
    with torch.no_grad():
        alone = scene.render(views.cameras, detail=False)
    # (kept in float16: rounding under 2.5e-4 for residuals, relative 5e-4 for depths)
    torch.testing.assert_close(d.residuals.float(), views.images - alone.rgb.clamp(0, 1),
                               atol=3.5e-4, rtol=0)
    torch.testing.assert_close(d.depths.float(), alone.depth[..., 0], atol=1e-3, rtol=5e-4)
    assert "detail_layer" in scene.metadata["timings"]
    assert reconstruct_scene(clip, on, frames=[0, 2], size=SIZE, detail=False).detail is None
    off = copy.deepcopy(model)
    off.config.detail_layer.enabled = False
    assert reconstruct_scene(clip, off, frames=[0, 2], size=SIZE).detail is None


def test_a_scene_from_a_smaller_network_size_keeps_a_finer_detail_level(clip: Clip, model):
    """The network run at half the clip's size: the layer is at that size, its finer level at
    the clip's own (image − the scene's render there); the size rule caps the level at twice
    the network's size a side, aspect kept."""
    import copy

    from splatnet.pipeline.scene import detail_size

    assert detail_size((270, 480), (128, 224)) == (270, 480)  # within 2.5x: the native size
    assert detail_size((330, 480), (128, 224)) == (256, 372)  # past it: 2x a side, aspect kept
    assert detail_size((1216, 1936), (128, 200)) == (251, 400)
    assert detail_size((256, 448), (128, 224)) == (256, 448)
    assert detail_size((100, 100), (128, 224)) == (128, 224)
    on = copy.deepcopy(model)
    on.config.detail_layer.enabled = True
    half = (SIZE[0] // 2, SIZE[1] // 2)
    scene = reconstruct_scene(clip, on, frames=[0, 2], size=half)
    assert scene.detail.size == half and scene.detail.finer.size == SIZE
    views = clip.views(frames=[0, 2], size=SIZE)
    with torch.no_grad():
        alone = scene.render(views.cameras, detail=False)
    torch.testing.assert_close(scene.detail.finer.residuals.float(),
                               views.images - alone.rgb.clamp(0, 1), atol=3.5e-4, rtol=0)
    full = reconstruct_scene(clip, on, frames=[0, 2], size=SIZE)
    assert full.detail.finer is None  # the network ran at the clip's size


@pytest.mark.parametrize("kw, msg", [({"use_tracks": "yes"}, "use_tracks"),
                                     ({"box_margin": -1}, "box_margin"),
                                     ({"box_margin": True}, "box_margin"),
                                     ({"detail": "no"}, "detail")])
def test_bad_options(clip: Clip, model, kw, msg):
    with pytest.raises(ValidationError, match=msg):
        reconstruct_scene(clip, model, **kw)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "splatnet", *args], capture_output=True, text=True)


def test_cli_writes_a_scene_that_info_reads(clip: Clip, tmp_path):
    out = tmp_path / "s.scene"
    r = _cli("reconstruct", str(clip.path), "-o", str(out), "--size", "64x112", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["format"] == "scene" and doc["actors"] >= 1 and out.is_file()
    info = _cli("info", str(out), "--json")
    assert info.returncode == 0, info.stderr
    assert sorted(json.loads(info.stdout)["colour"]) == sorted(clip.rig_camera_names)
    text = _cli("info", str(out))
    assert "colour:      " + clip.rig_camera_names[0] + " gain " in text.stdout, text.stdout
    assert "ego layer:   none" in text.stdout  # the synthetic street's rig sees no ego body
    # the shipped model keeps the detail layer: every rig camera at every context frame
    assert "detail:      12 context views at 64x112" in text.stdout, text.stdout
    assert json.loads(info.stdout)["detail"]["views"] == 12
    again = _cli("reconstruct", str(clip.path), "-o", str(out), "--size", "64x112")
    assert again.returncode == 1 and "--force" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    for args, msg in [(["--no-tracks", "-o", str(tmp_path / "x.ply")], ".scene output only"),
                      (["-o", str(tmp_path / "x.scn")], ".ply, .splat or .scene")]:
        r = _cli("reconstruct", str(clip.path), *args)
        assert r.returncode == 1 and msg in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
