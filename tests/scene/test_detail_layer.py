"""The detail layer (``splatnet.scene.layers.DetailLayer``, ``Scene.detail``): each context view's
residual carried to other views through the rendered depth. The warp is checked against a plane
by hand (NumPy: a camera shifted sideways sees the source image shifted by a whole number of
pixels), the depth and alpha tests, the time weights written out, the choice of source views for
a camera off the rig, a pixel on an actor carried with its box (by hand: a box moved by a whole
number of pixels); a scene gives its context views back where its Gaussians cover them, carries
nothing where an edit removed the surface, gives a moved actor its own detail, round-trips
through its file (version 4, float16; version 3 read) and refuses malformed layers naming the
field; refinement drops it."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import safetensors
import torch
from scene.builders import FRAME_TIMES, HEIGHT, WIDTH, make_scene

from splatnet import Cameras
from splatnet.errors import FormatError, ValidationError
from splatnet.scene import Scene
from splatnet.scene.layers import DETAIL_BOX_MARGIN, DETAIL_TIME_EPS, DetailLayer

H, W, F = 20, 32, 16.0  # image size and focal length of the plane tests
Z = 8.0  # the plane's depth


def _camera(tx: float, t: float, name: str | None = "cam", yaw: float = 0.0) -> Cameras:
    """A camera looking down +z from ``(tx, 0, 0)`` (turned by ``yaw`` about y) at time ``t``."""
    K = torch.tensor([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1]], dtype=torch.float32)
    c2w = torch.eye(4)
    c, s = np.cos(yaw), np.sin(yaw)
    c2w[:3, :3] = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=torch.float32)
    c2w[0, 3] = tx
    return Cameras(K[None], c2w[None], W, H, timestamps=torch.tensor([t]),
                   names=None if name is None else [name])


def _layer(residuals, depths, cams: list[Cameras], names, **kw) -> DetailLayer:
    return DetailLayer(tuple(names), torch.stack(residuals), torch.stack(depths),
                       torch.cat([c.K for c in cams]).double(),
                       torch.cat([c.cam_to_world for c in cams]).double(),
                       torch.cat([c.timestamps for c in cams]).double(), **kw)


def _pattern(seed: int) -> torch.Tensor:
    return (torch.rand(H, W, 3, generator=torch.Generator().manual_seed(seed)) - 0.5) * 0.4


def test_a_sideways_camera_takes_the_source_detail_shifted_by_whole_pixels():
    # Source at x = 0, target at x = 2 m: a point of the plane at target pixel u lies at source
    # pixel u + F * 2 / Z = u + 4 (pixel centres map to pixel centres: bilinear is exact).
    D = _pattern(0)
    layer = _layer([D], [torch.full((H, W), Z)], [_camera(0.0, 0.0)], ["cam"])
    rgb = torch.full((H, W, 3), 0.5)
    out = layer.apply(rgb, torch.ones(H, W, 1), torch.full((H, W, 1), Z), _camera(2.0, 0.0),
                      "cam", 0.0)
    ref = np.full((H, W, 3), 0.5)
    ref[:, : W - 4] += D.numpy()[:, 4:]  # the last 4 columns fall outside the source image
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-5)


def test_detail_is_taken_only_on_the_source_surface_and_where_the_render_is_covered():
    D = torch.full((H, W, 3), 0.1)
    depth = torch.full((H, W), Z)
    depth[:, :8] = Z * 0.9  # the source saw something nearer there: the plane is hidden
    depth[:, 8:12] = Z * 0.97  # within 5 %: the same surface
    depth[:, 12:14] = 0.0  # the source saw nothing there
    layer = _layer([D], [depth], [_camera(0.0, 0.0)], ["cam"])
    alpha = torch.ones(H, W, 1)
    alpha[:5] = 0.4  # too thin to take detail (min_alpha 0.5)
    out = layer.apply(torch.full((H, W, 3), 0.5), alpha, torch.full((H, W, 1), Z),
                      _camera(0.0, 0.0), "cam", 0.0)
    took = (out[..., 0] - 0.5).abs() > 1e-6
    expect = torch.ones(H, W, dtype=torch.bool)
    expect[:, :8] = False
    expect[:, 12:14] = False
    expect[:5] = False
    assert torch.equal(took, expect)
    assert torch.allclose(out[took], torch.tensor(0.6))
    # Nothing where the render drew nothing (depth 0), and the result is clamped into [0, 1].
    out = layer.apply(torch.full((H, W, 3), 0.95), torch.ones(H, W, 1), torch.zeros(H, W, 1),
                      _camera(0.0, 0.0), "cam", 0.0)
    assert torch.equal(out, torch.full((H, W, 3), 0.95))
    out = layer.apply(torch.full((H, W, 3), 0.95), torch.ones(H, W, 1), torch.full((H, W, 1), Z),
                      _camera(0.0, 0.0), "cam", 0.0)
    assert float(out.max()) == 1.0


def test_source_views_are_weighted_by_inverse_time_gap():
    a, b = torch.full((H, W, 3), 0.2), torch.full((H, W, 3), -0.1)
    depth = torch.full((H, W), Z)
    layer = _layer([a, b], [depth, depth], [_camera(0.0, 0.0), _camera(0.0, 0.2)], ["cam", "cam"])
    args = (torch.full((H, W, 3), 0.5), torch.ones(H, W, 1), torch.full((H, W, 1), Z))
    for t in (0.05, 0.1, 0.2):
        wa, wb = 1 / (abs(t - 0.0) + DETAIL_TIME_EPS), 1 / (abs(t - 0.2) + DETAIL_TIME_EPS)
        out = layer.apply(*args, _camera(0.0, t), "cam", t)
        assert float(out[0, 0, 0]) == pytest.approx(0.5 + (0.2 * wa - 0.1 * wb) / (wa + wb), abs=1e-6)
    out = layer.apply(*args, _camera(0.0, 0.1), "cam", None)  # unknown time: equal weights
    assert float(out[0, 0, 0]) == pytest.approx(0.55, abs=1e-6)


def test_a_camera_of_another_name_takes_the_views_of_the_rig_camera_looking_most_its_way():
    left, right = torch.full((H, W, 3), 0.2), torch.full((H, W, 3), -0.2)
    depth = torch.full((H, W), Z)
    layer = _layer([left, right], [depth, depth],
                   [_camera(0.0, 0.0, yaw=-0.3), _camera(0.0, 0.0, yaw=0.3)], ["left", "right"])
    assert layer.sources(_camera(0.0, 0.0, yaw=0.25), None) == [1]
    assert layer.sources(_camera(0.0, 0.0, yaw=-0.2), "target") == [0]
    assert layer.sources(_camera(0.0, 0.0, yaw=0.25), "left") == [0]  # a rig camera: its own
    assert layer.summary() == {"views": 2, "cameras": ["left", "right"], "size": [H, W],
                               "tolerance": 0.05, "min_alpha": 0.5}


def _images(scene: Scene, cams: Cameras, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(cams.num_cameras, cams.height, cams.width, 3, generator=g)


def _box(x: float, y: float = 0.0, z: float = Z) -> torch.Tensor:
    pose = torch.eye(4, dtype=torch.float64)
    pose[:3, 3] = torch.tensor([x, y, z], dtype=torch.float64)
    return pose


def _on_box(margin: float) -> np.ndarray:
    """[H, W] the pixels of the plane tests whose point lies in the 4 × 2 m box centred at
    x = 1 m grown by ``margin``: pixels u with (u + 0.5 - W/2) Z / F inside."""
    x = (np.arange(W) + 0.5 - W / 2) * Z / F
    y = (np.arange(H) + 0.5 - H / 2) * Z / F
    return (np.abs(x - 1.0) <= 2.0 + margin)[None] & (np.abs(y) <= 1.0 + margin)[:, None]


@pytest.mark.parametrize("margin", [None, 1.0])
def test_a_pixel_on_an_actor_is_carried_with_its_box(margin):
    """A box 4 m wide on the plane moved 1 m along x between the source (t = 0) and the render
    (t = 0.1): a target pixel u on it (grown by the layer's box margin: the default, or 1 m as
    a scene reconstructed with that margin has it) takes the source's detail at
    u − F · 1 / Z = u − 2; a pixel off the box takes the static warp (the same pixel). With the
    actor unknown to the layer, or absent from the source view, the box's pixels are the static
    warp or nothing."""
    D = _pattern(1)
    depth = torch.full((H, W), Z)
    then = _box(0.0)[None]
    kw = {} if margin is None else {"box_margin": margin}
    layer = _layer([D], [depth], [_camera(0.0, 0.0)], ["cam"], actors={"car": then}, **kw)
    size = (4.0, 2.0, 0.5)
    args = (torch.full((H, W, 3), 0.5), torch.ones(H, W, 1), torch.full((H, W, 1), Z),
            _camera(0.0, 0.1), "cam", 0.1)
    out = layer.apply(*args, {"car": (size, _box(1.0))})
    on = _on_box(DETAIL_BOX_MARGIN if margin is None else margin)
    if margin is not None:  # the wider margin takes pixels the default leaves static
        assert (on & ~_on_box(DETAIL_BOX_MARGIN)).sum() >= 8
    ref = np.full((H, W, 3), 0.5)
    for v in range(H):
        for u in range(W):
            su = u - 2 if on[v, u] else u
            if su >= 0:
                ref[v, u] += D.numpy()[v, su]
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-5)
    assert on.sum() >= 8 and (~on).sum() >= 8
    # not carried with the box: the actor unknown to the layer (static warp everywhere), an
    # actor the render does not pass, or a source view from which the actor was absent
    static = np.full((H, W, 3), 0.5) + D.numpy()
    plain = _layer([D], [depth], [_camera(0.0, 0.0)], ["cam"])
    np.testing.assert_allclose(plain.apply(*args, {"car": (size, _box(1.0))}).numpy(), static, atol=1e-5)
    np.testing.assert_allclose(layer.apply(*args).numpy(), static, atol=1e-5)
    absent = _layer([D], [depth], [_camera(0.0, 0.0)], ["cam"],
                    actors={"car": torch.zeros(1, 4, 4, dtype=torch.float64)}, **kw)
    gone = absent.apply(*args, {"car": (size, _box(1.0))}).numpy()
    np.testing.assert_allclose(gone[on], 0.5, atol=0)
    np.testing.assert_allclose(gone[~on], static[~on], atol=1e-5)


def test_a_moved_actor_seen_from_a_camera_moved_with_it_gets_its_own_detail():
    """A scene of the car alone: move the car 3 m sideways (an edit) and the cameras of a context
    frame by the same 3 m, and the car looks as it did; with the layer its pixels get their
    recorded image back, as the context views at their own time do (the static warp would
    carry the detail of the place the moved camera looks at)."""
    full = make_scene(sky=False)
    bg = full.background
    scene = full.remove("ped-7").replace(background=bg[torch.zeros(bg.num_gaussians, dtype=torch.bool)])
    cams = scene.frame_cameras(1)
    images = _images(scene, cams)
    layer_scene = scene.with_detail(cams, images, backend="torch")
    assert list(layer_scene.detail.actors) == ["car_1"]
    moved = layer_scene.move("car_1", dy=3.0)
    shift = torch.eye(4)
    shift[1, 3] = 3.0
    there = Cameras(cams.K, shift @ cams.cam_to_world, cams.width, cams.height,
                    timestamps=cams.timestamps, names=cams.names)
    with torch.no_grad():
        before = scene.render(cams, backend="torch")
        out = moved.render(there, backend="torch")
        static = moved.replace(detail=dataclasses.replace(moved.detail, actors={})) \
            .render(there, backend="torch")
    car = ((before.alpha > 0.5) & (before.depth > 0)).expand_as(images)
    assert int(car.sum()) > 300
    torch.testing.assert_close(out.rgb[car], images[car], atol=2.5e-4, rtol=0)
    assert float((static.rgb[car] - images[car]).abs().mean()) > 0.05


def test_a_context_view_gets_its_image_back_where_the_gaussians_cover_it():
    scene = make_scene()
    cams = scene.frame_cameras(1)
    images = _images(scene, cams)
    with_detail = scene.with_detail(cams, images, backend="torch")
    with torch.no_grad():
        out = with_detail.render(cams, backend="torch")
        plain = scene.render(cams, backend="torch")
        off = with_detail.render(cams, backend="torch", detail=False)
    assert torch.equal(off.rgb, plain.rgb)
    covered = ((plain.alpha > 0.5) & (plain.depth > 0)).expand_as(images)
    assert bool(covered.any()) and bool((~covered).any())
    # (the residuals are kept in float16: rounding under 2.5e-4 for values below 1)
    torch.testing.assert_close(out.rgb[covered], images[covered], atol=2.5e-4, rtol=0)
    torch.testing.assert_close(out.rgb[~covered], plain.rgb[~covered].clamp(0, 1), atol=0, rtol=0)
    # The layer kept image − render (clamped), the render's depth and the cameras.
    d = with_detail.detail
    assert d.names == ("front", "front_left") and d.size == (HEIGHT, WIDTH)
    assert d.residuals.dtype == d.depths.dtype == torch.float16
    torch.testing.assert_close(d.residuals.float(), images - plain.rgb.clamp(0, 1), atol=2.5e-4, rtol=0)
    assert torch.equal(d.depths, plain.depth[..., 0].half())
    assert torch.equal(d.times, torch.tensor([FRAME_TIMES[1]] * 2, dtype=torch.float64))


def test_nothing_is_carried_where_an_edit_removed_the_surface():
    scene = make_scene(sky=False)
    cams = scene.frame_cameras(1)
    with_detail = scene.with_detail(cams, _images(scene, cams))
    edited = with_detail.remove("car_1")
    with torch.no_grad():
        before = scene.render(cams, backend="torch")
        out = edited.render(cams, backend="torch")
        alone = edited.render(cams, backend="torch", detail=False)
    # Where the car was, the edited render's depth is the background's (or none): more than 5 %
    # from the depth the layer kept there, so those pixels show the Gaussians alone.
    gone = (alone.depth - before.depth).abs() > 0.05 * before.depth
    assert int(gone.sum()) > 20
    gone = gone.expand_as(out.rgb)
    torch.testing.assert_close(out.rgb[gone], alone.rgb[gone].clamp(0, 1), atol=0, rtol=0)


def test_with_detail_checks_its_arguments():
    scene = make_scene()
    cams = scene.frame_cameras(1)
    images = _images(scene, cams)
    with pytest.raises(ValidationError, match="images: expected a float tensor"):
        scene.with_detail(cams, images[:1])
    with pytest.raises(ValidationError, match=r"images: values must be finite and in \[0, 1\]"):
        scene.with_detail(cams, images * 2)
    with pytest.raises(ValidationError, match="cameras.names: required"):
        scene.with_detail(Cameras(cams.K, cams.cam_to_world, cams.width, cams.height,
                                  timestamps=cams.timestamps), images)
    with pytest.raises(ValidationError, match=r"detail.tolerance: expected a relative depth in \(0, 1\]"):
        scene.with_detail(cams, images, tolerance=0.0)
    with pytest.raises(ValidationError, match="detail: expected True or False"):
        scene.render(cams, detail=1)


def _with_detail() -> Scene:
    scene = make_scene()
    cams = Cameras.cat([scene.frame_cameras(0), scene.frame_cameras(2)])
    return scene.with_detail(cams, _images(scene, cams), tolerance=0.1, min_alpha=0.25)


def test_a_detail_layer_round_trips_exactly_as_version_4(tmp_path):
    scene = _with_detail()
    back = Scene.load(scene.save(tmp_path / "d.scene"))
    with safetensors.safe_open(tmp_path / "d.scene", "pt") as f:
        assert f.metadata()["version"] == "4"
        assert f.get_tensor("detail_layer.residuals").dtype == torch.float16
        assert f.get_tensor("detail_layer.depths").dtype == torch.float16
        assert json.loads(f.metadata()["scene"])["detail_layer"] == _DESC
    for part in ("residuals", "depths", "K", "cam_to_world", "times"):
        a, b = getattr(scene.detail, part), getattr(back.detail, part)
        assert a.dtype == b.dtype and torch.equal(a, b)
    assert list(back.detail.actors) == ["car_1", "ped-7"]
    for k, v in scene.detail.actors.items():
        assert v.dtype == back.detail.actors[k].dtype == torch.float64
        assert torch.equal(v, back.detail.actors[k])
    assert back.detail.names == scene.detail.names
    cams = scene.frame_cameras(1)
    with torch.no_grad():
        assert torch.equal(scene.render(cams).rgb, back.render(cams).rgb)
    # Without a layer the file stays version 1 (older splatnet reads it).
    with safetensors.safe_open(make_scene().save(tmp_path / "plain.scene"), "pt") as f:
        assert f.metadata()["version"] == "1"


def test_the_layer_grows_boxes_by_the_margin_the_scene_was_made_with(tmp_path):
    """with_detail takes the scene's recorded box_margin (as reconstruct_scene records it), an
    explicit one over it, and the default for a scene that records none; the file keeps it, and
    a version-4 file written without the key reads as the default."""
    scene = make_scene()
    cams = Cameras.cat([scene.frame_cameras(0), scene.frame_cameras(2)])
    images = _images(scene, cams)
    assert scene.with_detail(cams, images).detail.box_margin == DETAIL_BOX_MARGIN
    wide = scene.replace(metadata={**scene.metadata, "box_margin": 0.7})
    assert wide.with_detail(cams, images).detail.box_margin == 0.7
    layered = wide.with_detail(cams, images, box_margin=1.5)
    assert layered.detail.box_margin == 1.5
    back = Scene.load(layered.save(tmp_path / "wide.scene"))
    assert back.detail.box_margin == 1.5
    old = dict(_DESC)
    del old["box_margin"]
    bare = _rewrite(_with_detail().save(tmp_path / "d.scene"), tmp_path / "bare.scene",
                    description={"detail_layer": old})
    assert Scene.load(bare).detail.box_margin == DETAIL_BOX_MARGIN
    with pytest.raises(ValidationError, match=r"metadata.box_margin: expected metres in \[0, 10\]"):
        scene.replace(metadata={"box_margin": "x"}).with_detail(cams, images)
    with pytest.raises(ValidationError, match=r"^box_margin: expected metres in \[0, 10\], got 11"):
        scene.with_detail(cams, images, box_margin=11)


def test_a_version_3_file_of_float32_detail_is_read_as_float16(tmp_path):
    """Version 3 stored the residuals and depths in float32; such a file is read, each value
    rounded to float16 as a scene holds it. In a version 4 file float32 is refused."""
    scene = _with_detail()
    good = scene.save(tmp_path / "d.scene")
    d = scene.detail
    g = torch.Generator().manual_seed(3)
    res32 = (d.residuals.float() + 1e-4 * torch.rand(d.residuals.shape, generator=g)).clamp(-1, 1)
    dep32 = d.depths.float() * 1.0001
    desc = {k: v for k, v in _DESC.items() if k not in ("actors", "box_margin")}  # (version 4 added them)
    old = _rewrite(good, tmp_path / "v3.scene", meta={"version": "3"},
                   description={"detail_layer": desc},
                   tensors={"detail_layer.residuals": res32, "detail_layer.depths": dep32,
                            "detail_layer.actor.0.box_to_world": None,
                            "detail_layer.actor.1.box_to_world": None})
    back = Scene.load(old).detail
    assert back.residuals.dtype == back.depths.dtype == torch.float16
    assert torch.equal(back.residuals, res32.half()) and torch.equal(back.depths, dep32.half())
    with pytest.raises(FormatError, match=r"'detail_layer.residuals' is F32 \[4, 48, 64, 3\], "
                                          r"expected F16"):
        Scene.load(_rewrite(good, tmp_path / "v4.scene", tensors={"detail_layer.residuals": res32}))


def test_depths_past_float16s_range_are_kept_as_its_largest_value():
    d = _with_detail().detail
    far = d.depths.float().clone()
    far[0, 0, 0] = 1e6
    kept = make_scene().replace(detail=DetailLayer(d.names, d.residuals, far, d.K, d.cam_to_world,
                                                   d.times)).detail
    assert float(kept.depths[0, 0, 0]) == 65504.0 and bool(torch.isfinite(kept.depths).all())


def _rewrite(src, dst, *, meta=None, description=None, tensors=None):
    with safetensors.safe_open(src, "pt") as f:
        header = dict(f.metadata())
        data = {k: f.get_tensor(k) for k in f.keys()}
    d = json.loads(header["scene"])
    d.update(description or {})
    header.update(meta or {}, scene=json.dumps(d))
    for k, v in (tensors or {}).items():
        if v is None:
            data.pop(k)
        else:
            data[k] = v
    dst.write_bytes(safetensors.torch.save(data, metadata=header))
    return dst


_DESC = {"cameras": ["front", "front_left", "front", "front_left"], "height": HEIGHT,
         "width": WIDTH, "tolerance": 0.1, "min_alpha": 0.25, "actors": ["car_1", "ped-7"],
         "box_margin": DETAIL_BOX_MARGIN}


@pytest.mark.parametrize("change, match", [
    (dict(meta={"version": "2"}), "unknown key 'detail_layer'"),
    (dict(description={"detail_layer": {**_DESC, "actors": ["car_1", "car_1"]}}),
     "detail_layer: actors must be a list of at most 4096 distinct actor ids"),
    (dict(tensors={"detail_layer.actor.1.box_to_world": None}),
     "tensor 'detail_layer.actor.1.box_to_world' is missing"),
    (dict(tensors={"detail_layer.actor.0.box_to_world": torch.zeros(4, 4, 4, dtype=torch.float64)}),
     r"detail.actors\['car_1'\]: the actor is absent from every view"),
    (dict(tensors={"detail_layer.actor.0.box_to_world": 2 * torch.eye(4, dtype=torch.float64)
                   .expand(4, 4, 4).contiguous()}),
     r"detail.actors\['car_1'\]\[0\]"),
    (dict(description={"detail_layer": {**_DESC, "cameras": ["rear"] * 4}}),
     "detail_layer: cameras must be a list of 1..4096 rig camera names"),
    (dict(description={"detail_layer": {**_DESC, "height": 0}}), "height and width must be"),
    (dict(description={"detail_layer": {**_DESC, "tolerance": "0.1"}}),
     "tolerance and min_alpha must be numbers"),
    (dict(description={"detail_layer": {**_DESC, "tolerance": 2.0}}),
     r"detail.tolerance: expected a relative depth in \(0, 1\]"),
    (dict(description={"detail_layer": {**_DESC, "box_margin": "wide"}}),
     "detail_layer: box_margin must be a number"),
    (dict(description={"detail_layer": {**_DESC, "box_margin": -0.5}}),
     r"detail.box_margin: expected metres in \[0, 10\], got -0.5"),
    (dict(description={"detail_layer": {**_DESC, "min_alpha": 1.0}}),
     r"detail.min_alpha: expected an alpha in \[0, 1\)"),
    (dict(tensors={"detail_layer.depths": None}), "tensor 'detail_layer.depths' is missing"),
    (dict(tensors={"detail_layer.times": torch.zeros(3, dtype=torch.float64)}),
     r"tensor 'detail_layer.times' is F64 \[3\], expected F64 \[4\]"),
    (dict(tensors={"detail_layer.residuals": torch.full((4, HEIGHT, WIDTH, 3), 1.5).half()}),
     r"detail.residuals: values must lie in \[-1, 1\]"),
    (dict(tensors={"detail_layer.depths": torch.full((4, HEIGHT, WIDTH), float("nan")).half()}),
     "detail.depths: non-finite"),
    (dict(tensors={"detail_layer.depths": torch.full((4, HEIGHT, WIDTH), -1.0).half()}),
     "detail.depths: values must be >= 0"),
    (dict(tensors={"detail_layer.cam_to_world": torch.ones(4, 4, 4, dtype=torch.float64)}),
     r"detail.cam_to_world\[0\]"),
    (dict(tensors={"detail_layer.K": torch.zeros(4, 3, 3, dtype=torch.float64)}),
     "detail.K: focal lengths must be > 0"),
])
def test_bad_detail_layers_are_refused_naming_the_field(tmp_path, change, match):
    good = _with_detail().save(tmp_path / "good.scene")
    bad = _rewrite(good, tmp_path / "bad.scene", **change)
    with pytest.raises(FormatError, match=match) as info:
        Scene.load(bad)
    assert str(bad) in str(info.value)


def test_refinement_drops_the_layer():
    from types import SimpleNamespace

    from splatnet.optimization import refine_scene

    scene = make_scene()
    cams = scene.frame_cameras(1)
    images = _images(scene, cams)
    views = SimpleNamespace(cameras=cams, images=images)
    assert refine_scene(scene.with_detail(cams, images), views, 2).detail is None


def test_a_render_takes_the_level_nearest_its_own_focal_length():
    """A layer at 20x32 with a finer level at 40x64 (the same views, focal length doubled): a
    render at 20x32 takes the coarse residuals, one at 40x64 (or 36x56) the finer ones."""
    depth = torch.full((H, W), Z)
    coarse = _layer([torch.full((H, W, 3), 0.1)], [depth], [_camera(0.0, 0.0)], ["cam"])
    big = _camera(0.0, 0.0)
    big = Cameras(big.K * torch.tensor([[2.0], [2.0], [1.0]]), big.cam_to_world, 2 * W, 2 * H,
                  timestamps=big.timestamps, names=["cam"])
    fine = _layer([torch.full((2 * H, 2 * W, 3), -0.2)], [torch.full((2 * H, 2 * W), Z)], [big],
                  ["cam"])
    layer = DetailLayer(coarse.names, coarse.residuals, coarse.depths, coarse.K,
                        coarse.cam_to_world, coarse.times, finer=fine)
    small = layer.apply(torch.full((H, W, 3), 0.5), torch.ones(H, W, 1), torch.full((H, W, 1), Z),
                        _camera(0.0, 0.0), "cam", 0.0)
    assert torch.allclose(small, torch.tensor(0.6))
    large = layer.apply(torch.full((2 * H, 2 * W, 3), 0.5), torch.ones(2 * H, 2 * W, 1),
                        torch.full((2 * H, 2 * W, 1), Z), big, "cam", 0.0)
    assert torch.allclose(large, torch.tensor(0.3))
    assert layer.summary()["finer_size"] == [2 * H, 2 * W]


def _with_finer() -> Scene:
    scene = make_scene()
    cams = scene.frame_cameras(1)
    big = Cameras(cams.K * torch.tensor([[2.0], [2.0], [1.0]]), cams.cam_to_world, 2 * WIDTH,
                  2 * HEIGHT, timestamps=cams.timestamps, names=cams.names)
    return scene.with_detail(cams, _images(scene, cams), finer=(big, _images(scene, big, seed=1)),
                             backend="torch")


def test_a_finer_level_round_trips_and_is_the_scenes_render_at_its_size(tmp_path):
    scene = _with_finer()
    d = scene.detail
    assert d.size == (HEIGHT, WIDTH) and d.finer.size == (2 * HEIGHT, 2 * WIDTH)
    back = Scene.load(scene.save(tmp_path / "f.scene"))
    with safetensors.safe_open(tmp_path / "f.scene", "pt") as f:
        desc = json.loads(f.metadata()["scene"])["detail_layer"]
        assert desc["finer"] == {"height": 2 * HEIGHT, "width": 2 * WIDTH}
    for part in ("residuals", "depths", "K"):
        assert torch.equal(getattr(back.detail.finer, part), getattr(d.finer, part))
    # the finer level holds image − render at its own size
    big = Cameras(d.finer.K.float(), d.finer.cam_to_world.float(), 2 * WIDTH, 2 * HEIGHT,
                  timestamps=d.times.float(), names=list(d.names))
    with torch.no_grad():
        alone = scene.render(big, backend="torch", detail=False)
        out = scene.render(big, backend="torch")
    torch.testing.assert_close(d.finer.residuals.float(),
                               _images(scene, big, seed=1) - alone.rgb.clamp(0, 1), atol=2.5e-4, rtol=0)
    covered = ((alone.alpha > 0.5) & (alone.depth > 0)).expand_as(out.rgb)
    torch.testing.assert_close(out.rgb[covered], _images(scene, big, seed=1)[covered], atol=2.5e-4,
                               rtol=0)


@pytest.mark.parametrize("change, match", [
    (dict(description={"detail_layer": {**_DESC, "cameras": ["front", "front_left"],
                                        "finer": {"height": 0, "width": 64}}}),
     "detail_layer.finer: height and width must be image sides"),
    (dict(tensors={"detail_layer.finer.K": None}), "tensor 'detail_layer.finer.K' is missing"),
    (dict(tensors={"detail_layer.finer.residuals": torch.zeros(2, 48, 64, 3).half()}),
     r"'detail_layer.finer.residuals' is F16 \[2, 48, 64, 3\], expected F16 \[2, 96, 128, 3\]"),
    (dict(tensors={"detail_layer.finer.depths": torch.full((2, 96, 128), -1.0).half()}),
     "detail.depths: values must be >= 0"),
])
def test_bad_finer_levels_are_refused(tmp_path, change, match):
    good = _with_finer().save(tmp_path / "good.scene")
    bad = _rewrite(good, tmp_path / "bad.scene", **change)
    with pytest.raises(FormatError, match=match):
        Scene.load(bad)


def test_a_finer_level_must_be_larger_and_of_the_same_views():
    scene = _with_finer()
    d = scene.detail
    with pytest.raises(ValidationError, match="detail.finer: expected views larger"):
        scene.replace(detail=DetailLayer(d.names, d.residuals, d.depths, d.K, d.cam_to_world,
                                         d.times, finer=DetailLayer(d.names, d.residuals, d.depths,
                                                                    d.K, d.cam_to_world, d.times)))
    with pytest.raises(ValidationError, match="detail.finer: expected a DetailLayer of the same"):
        scene.replace(detail=DetailLayer(d.names, d.residuals, d.depths, d.K, d.cam_to_world,
                                         d.times, finer=DetailLayer(
                                             d.names[::-1], d.finer.residuals, d.finer.depths,
                                             d.finer.K, d.cam_to_world, d.times)))
