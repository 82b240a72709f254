"""Synthetic-clip realism options: each one changes what it says, measured on the output against
the same clip rendered without it, and each is deterministic for a seed."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("open3d")

import splatnet  # noqa: E402
from splatnet.clip.synth import generate, render_clip  # noqa: E402
from splatnet.clip.synth import materials as M  # noqa: E402
from splatnet.clip.synth.layout import generate_layout  # noqa: E402
from splatnet.clip.synth.motion_blur import motion_blur  # noqa: E402
from splatnet.clip.synth.noise import Noise  # noqa: E402
from splatnet.clip.synth.realism import PRESETS, Realism, parse_realism  # noqa: E402
from splatnet.errors import ValidationError  # noqa: E402

TINY = dict(frames=1, lidar=False)


def _pair(seed, realism, **kw):
    """The same clip without and with ``realism``."""
    args = {**TINY, **kw}
    return render_clip(seed, realism=None, **args), render_clip(seed, realism=realism, **args)


def _f(img):
    return img.astype(np.float64)


def test_default_and_none_preset_change_nothing():
    kw = dict(cameras=2, frames=1, size=(24, 32), lidar=False)
    a = render_clip(3, **kw)
    for r in ("none", Realism()):
        b = render_clip(3, realism=r, **kw)
        assert b.metadata == a.metadata and not b.masks
        for k in a.images:
            assert (a.images[k] == b.images[k]).all() and (a.depths[k] == b.depths[k]).all()


def test_vignetting_darkens_corners_by_the_configured_factor():
    s = 0.3
    a, b = _pair(5, Realism(vignetting=s), cameras=2, size=(64, 96))
    for cam in a.cameras:
        x, y = _f(a.images[(0, cam.name)]), _f(b.images[(0, cam.name)])
        ok = x > 15  # well above the 8-bit rounding

        def gain(rows, cols, x=x, y=y, ok=ok):
            xs, ys, m = x[rows][:, cols], y[rows][:, cols], ok[rows][:, cols]
            assert m.sum() >= 6
            return ys[m].sum() / xs[m].sum()

        near, far = slice(0, 2), slice(-2, None)
        corner = np.mean([gain(r_, c_) for r_ in (near, far) for c_ in (near, far)])
        centre = gain(slice(29, 35), slice(45, 51))
        # 2x2 corner patches sit 0.5-1.5 px inside the corner: a hair brighter than 1 - s.
        assert abs(corner / centre - (1 - s)) < 0.02, cam.name
        assert abs(centre - 1.0) < 0.01
        # Darker the further off axis: mean gain in rings round the centre keeps falling.
        yy, xx = np.mgrid[0:64, 0:96] + 0.5
        rad = np.hypot(xx - 48, yy - 32) / np.hypot(48, 32)
        band = [((rad >= lo) & (rad < lo + 0.25))[..., None] & ok for lo in (0, 0.25, 0.5, 0.75)]
        rings = [y[m].sum() / x[m].sum() for m in band]
        assert all(a_ > b_ for a_, b_ in zip(rings, rings[1:])), rings


def test_exposure_and_white_balance_differ_between_cameras_within_the_range():
    stops, wb = 0.5, 0.1
    a, b = _pair(2, Realism(exposure_stops=stops, white_balance=wb), cameras=6, size=(32, 48))
    meta = b.metadata["realism"]["cameras"]
    greens = []
    for cam in a.cameras:
        x, y = _f(a.images[(0, cam.name)]), _f(b.images[(0, cam.name)])
        ok = ((x > 10) & (x < 200) & (y < 250)).all(-1)  # unsaturated in both
        assert ok.sum() > 300
        gain = y[ok].sum(0) / x[ok].sum(0)  # [3] measured per-channel gain
        greens.append(gain[1])
        assert 2 ** -stops - 0.01 < gain[1] < 2 ** stops + 0.01
        assert (np.abs(gain[[0, 2]] / gain[1] - 1) < wb + 0.01).all()
        np.testing.assert_allclose(gain, meta[cam.name]["gains_rgb"], rtol=0.02)
    assert max(greens) / min(greens) > 1.3  # cameras really differ (this seed spans 1.3x+)
    # Exposure alone leaves the colour balance alone.
    a, c = _pair(2, Realism(exposure_stops=stops), cameras=2, size=(32, 48))
    for cam in a.cameras:
        x, y = _f(a.images[(0, cam.name)]), _f(c.images[(0, cam.name)])
        ok = ((x > 10) & (x < 200) & (y < 250)).all(-1)
        gain = y[ok].sum(0) / x[ok].sum(0)
        np.testing.assert_allclose(gain / gain[1], 1.0, atol=0.01)


def test_auto_exposure_meters_the_first_frame_to_the_target_and_holds():
    target = 0.42
    a, b = _pair(1, Realism(auto_exposure=target), cameras=3, frames=2, size=(32, 48))
    meta = b.metadata["realism"]["cameras"]
    for cam in a.cameras:
        y0 = _f(b.images[(0, cam.name)]) / 255
        assert abs(y0.mean() - target) < 0.005, cam.name  # clipped at white, as metered
        g = meta[cam.name]["auto_exposure_gain"]
        assert g > 1.1  # the clean render is darker than real footage
        for f in (0, 1):  # the same gain on every frame (measured where nothing clips)
            x, y = _f(a.images[(f, cam.name)]), _f(b.images[(f, cam.name)])
            ok = (x > 10) & (y < 250)
            assert abs(y[ok].sum() / x[ok].sum() / g - 1) < 0.01


def test_read_noise_sigma_matches_the_configured_sigma():
    sigma = 0.02
    a, b = _pair(4, Realism(read_noise=sigma), cameras=2, size=(64, 96))
    d, keep = [], []
    for k in a.images:
        x, y = _f(a.images[k]), _f(b.images[k])
        d.append((y - x) / 255.0)
        keep.append((x > 20) & (x < 235))  # away from clipping at black and white
    d, keep = np.concatenate(d), np.concatenate(keep)
    diff = d[keep]
    assert abs(diff.mean()) < 1e-3
    # Both images are rounded to 8 bits: about 2/12 LSB² of extra variance.
    expected = np.sqrt(sigma ** 2 + 2 / 12 / 255 ** 2)
    assert abs(diff.std() / expected - 1) < 0.04, diff.std()


def test_shot_noise_grows_with_the_square_root_of_the_signal():
    shot = 0.05
    a, b = _pair(4, Realism(shot_noise=shot), cameras=2, size=(64, 96))
    x = np.concatenate([_f(a.images[k]) for k in a.images]).ravel() / 255
    y = np.concatenate([_f(b.images[k]) for k in b.images]).ravel() / 255
    for lo, hi in ((0.1, 0.25), (0.25, 0.45), (0.45, 0.8)):
        sel = (x > lo) & (x < hi)
        assert sel.sum() > 500
        expected = np.sqrt(shot ** 2 * x[sel].mean() + 2 / 12 / 255 ** 2)
        assert abs((y - x)[sel].std() / expected - 1) < 0.08, (lo, hi)


def _psnr(a, b):
    mse = np.mean((_f(a) - _f(b)) ** 2)
    return 10 * np.log10(255 ** 2 / mse)


def test_jpeg_quality_lowers_psnr_monotonically():
    kw = dict(cameras=2, size=(48, 64))
    clean = render_clip(6, **TINY, **kw)
    psnr = []
    for q in (95, 75, 50, 25, 5):
        c = render_clip(6, realism=Realism(jpeg_quality=q), **TINY, **kw)
        psnr.append(np.mean([_psnr(clean.images[k], c.images[k]) for k in clean.images]))
    assert all(p1 > p2 for p1, p2 in zip(psnr, psnr[1:])), psnr
    assert psnr[0] > 30 and psnr[-1] < psnr[0] - 8, psnr


def test_hood_is_drawn_only_in_the_configured_cameras_and_masked_exactly():
    r = Realism(hood_cameras=("cam_front", "cam_back"), hood_height=(0.1, 0.2))
    a, b = _pair(8, r, cameras=4, frames=2, size=(48, 64))
    assert sorted(b.masks) == ["cam_back", "cam_front"]
    H = 48
    for (f, name), img in b.images.items():
        differs = (img != a.images[(f, name)]).any(-1)
        if name not in r.hood_cameras:
            assert not differs.any() and name not in b.masks
            continue
        valid = b.masks[name]
        hood = ~valid
        assert not (differs & valid).any()  # nothing outside the mask changed
        # Every pixel the hood covers fully (all but the anti-aliased top one per column)
        # changed.
        top = np.argmax(hood, axis=0)
        full = hood & (np.arange(H)[:, None] > top[None])
        assert differs[full].mean() > 0.97
        # A bottom region: in each column the hood runs down to the last row.
        rows = hood.sum(0)
        assert all(hood[H - n:, c].all() for c, n in enumerate(rows) if n)
        centre = rows[31:33].mean() / H
        assert 0.1 - 1 / H <= centre <= 0.2 + 1 / H
        assert (b.depths[(f, name)][hood] == 0).all() and not b.sky[(f, name)][hood].any()
        assert (b.depths[(f, name)][valid] == a.depths[(f, name)][valid]).all()


def test_hood_masks_are_written_to_the_clip(tmp_path):
    r = Realism(hood_cameras=("cam_front",), hood_height=(0.15, 0.15))
    path = generate(tmp_path / "c", 1, cameras=2, frames=1, size=(32, 48), lidar=False,
                    realism=r, image_format="png")
    clip = splatnet.Clip.load(path)
    v = clip.views()
    assert v.masks is not None
    m = v.masks.numpy()[..., 0]
    front = v.camera_names.index("cam_front")
    assert (~m[front]).sum() > 0 and m[1 - front].all()
    img = v.images.numpy()[front]
    bottom = img[-2:, 20:28]  # under the hood: the body, not the clean render
    clean = render_clip(1, cameras=2, size=(32, 48), **TINY).images[(0, "cam_front")][-2:, 20:28]
    assert np.abs(bottom * 255 - clean).max() > 3
    meta = json.loads((path / "clip.json").read_text())["metadata"]["realism"]
    assert meta["cameras"]["cam_front"]["hood_height"] == 0.15


def test_motion_blur_is_a_box_filter_along_the_image_motion():
    """Oracle: a camera sliding sideways past a plane at depth z sees a step edge move by
    fx·v·T/z pixels during the shutter; the blur turns it into a linear ramp of that width.
    The same happens with a static camera and the plane moving at -v."""
    h, w, fx, z, v, T = 8, 64, 50.0, 5.0, 10.0, 0.08  # ramp width 8 px
    K = np.array([[fx, 0, w / 2], [0, fx, h / 2], [0, 0, 1.0]])
    x0 = 30.0
    xs = np.arange(w) + 0.5
    img = np.repeat(np.repeat((xs > x0).astype(np.float32)[None, :, None], h, 0), 3, 2)
    depth = np.full((h, w), z)

    def sliding(tau):
        T_ = np.eye(4)
        T_[0, 3] = v * tau
        return T_

    expected = np.clip((xs - x0) / (fx * v * T / z) + 0.5, 0, 1)
    still = np.zeros((h, w, 3))
    moving = np.zeros((h, w, 3))
    moving[..., 0] = -v
    for out in (motion_blur(img, depth, still, K, sliding, T),
                motion_blur(img, depth, moving, K, lambda tau: np.eye(4), T)):
        assert np.abs(out[:, :, 0] - expected[None]).max() < 0.06
        assert np.allclose(out, out[:1], atol=1e-6)  # nothing moves vertically
    # The sky (infinitely far) does not move under a translation.
    sky = motion_blur(img, np.full((h, w), np.inf), still, K, sliding, T)
    np.testing.assert_allclose(sky, img, atol=1e-6)


def test_motion_blur_removes_detail_along_the_motion_in_side_cameras():
    base = Realism(ego_speed=(10.0, 10.0))
    kw = dict(cameras=4, size=(64, 96), **TINY)
    a = render_clip(5, realism=base, **kw)
    b = render_clip(5, realism=Realism(ego_speed=(10.0, 10.0), exposure_time=0.03), **kw)
    for name in ("cam_left", "cam_right"):  # the ego drives along their image x
        x, y = (_f(c.images[(0, name)]).mean(-1) for c in (a, b))
        rx = (np.diff(y, axis=1) ** 2).sum() / (np.diff(x, axis=1) ** 2).sum()
        ry = (np.diff(y, axis=0) ** 2).sum() / (np.diff(x, axis=0) ** 2).sum()
        assert rx < 0.6 and rx < ry - 0.2, (name, rx, ry)


def test_rig_variety_gives_the_configured_counts_and_ranges():
    r = Realism(rig_cameras=(3, 8), hfov_deg=(50.0, 110.0), mount_height=(1.3, 2.1),
                pitch_deg=(-3.0, 7.0), roll_deg=2.0)
    counts, rolls = set(), []
    for seed in range(6):
        c = render_clip(seed, size=(16, 24), realism=r, **TINY)
        counts.add(len(c.cameras))
        assert 3 <= len(c.cameras) <= 8
        for cam in c.cameras:
            hfov = 2 * np.degrees(np.arctan(0.5 * 24 / cam.K[0, 0]))
            assert 50 - 1e-6 <= hfov <= 110 + 1e-6
            R, t = cam.cam_to_ego[:3, :3], cam.cam_to_ego[:3, 3]
            assert 1.3 - 1e-9 <= t[2] <= 2.1 + 1e-9
            pitch = np.degrees(np.arcsin(-R[2, 2]))  # optical axis below the horizon
            assert -3 - 1e-6 <= pitch <= 7 + 1e-6
            # Roll: the image x axis tilted out of the horizontal plane.
            roll = np.degrees(np.arcsin(-R[2, 0] / np.cos(np.radians(pitch))))
            assert abs(roll) <= 2 + 1e-6
            rolls.append(roll)
    assert len(counts) >= 3 and np.std(rolls) > 0.5
    # The street does not depend on the rig.
    assert (render_clip(0, size=(16, 24), realism=r, **TINY).metadata["street"]
            == render_clip(0, size=(16, 24), **TINY).metadata["street"])


def test_ego_speed_range_is_measured_in_the_poses():
    for seed in range(3):
        c = render_clip(seed, cameras=1, frames=2, size=(16, 24), lidar=False,
                        realism=Realism(ego_speed=(2.0, 4.0)))
        step = np.linalg.norm(c.ego_to_world[1][:3, 3] - c.ego_to_world[0][:3, 3])
        assert 2.0 - 1e-6 <= step / 0.1 <= 4.0 + 1e-6


def test_sky_variety_widens_sun_elevation_and_weather():
    elev = {}
    sat = {"clear": [], "hazy": [], "overcast": []}
    for r in (None, Realism(sky_variety=True)):
        elev[r] = []
        for seed in range(6):
            c = render_clip(seed, cameras=1, size=(16, 24), realism=r, **TINY)
            elev[r].append(np.degrees(np.arcsin(c.metadata["sun_direction_world"][2])))
            sky = c.sky[(0, "cam_front")]
            if r is not None and sky.sum() > 10:
                rgb = _f(c.images[(0, "cam_front")])[sky].mean(0)
                sat[c.metadata["street"]["weather"]].append((rgb.max() - rgb.min()) / rgb.max())
    assert 15 <= min(elev[None]) and max(elev[None]) <= 60
    e1 = elev[Realism(sky_variety=True)]
    assert min(e1) < 12 or max(e1) > 63
    assert all(sat.values()), sat  # all three weathers among six seeds
    # Measured in the images: grey overcast skies, blue clear ones, hazy ones in between.
    assert max(sat["overcast"]) < 0.08 < min(sat["hazy"]) <= max(sat["hazy"]) < min(sat["clear"])


def _road_patch(detail: bool) -> np.ndarray:
    """Albedo of a 48 m x 6 m stretch of the ego's lane seen from straight above, 2 cm pixels."""
    lay = generate_layout(np.random.default_rng([3, 0]), 0.2)
    look = lay.look
    look.detail = detail
    s, d = np.meshgrid(np.arange(0, 48, 0.1), np.arange(-6.0, 0.0, 0.1), indexing="ij")
    p = lay.centerline.point(s.ravel(), d.ravel())
    n = len(p)
    up = np.tile([0.0, 0.0, 1.0], (n, 1))
    surf = M.Surface(p, up, -up, p, s.ravel(), d.ravel(), np.ones(n), np.ones(n),
                     np.tile([1.0, 0, 0], (n, 1)), np.tile([0, 1.0, 0], (n, 1)),
                     np.zeros(n, np.int64), np.full(n, 0.02, np.float32))
    objs = M.ObjectTable(np.zeros((1, 3)), np.zeros((1, 3)), np.zeros((1, 8)), np.zeros(1, int))
    return M.shade(M.ROAD, surf, Noise(np.random.default_rng([3, 2])), objs, look).reshape(
        *s.shape, 3)


def test_texture_variety_adds_large_scale_variation_to_the_road():
    plain, rich = _road_patch(False), _road_patch(True)
    assert not np.allclose(plain, rich)

    def block_std(a):  # spread of 1 m x 1 m block means: wear and patches, not grain
        g = a.mean(-1)
        return g.reshape(48, 10, 6, 10).mean(axis=(1, 3)).std()

    assert block_std(rich) > 1.15 * block_std(plain)
    # Both kinds of repair patch (darker fresh asphalt, paler old) at the 1 m scale, and thin
    # dark cracks on a few per cent of the surface.
    ratio = rich.mean(-1) / plain.mean(-1)
    blocks = ratio.reshape(48, 10, 6, 10).mean(axis=(1, 3))
    assert blocks.min() < 0.85 and blocks.max() > 1.1
    assert 0.002 < (ratio < 0.7).mean() < 0.1
    # In a clip: surfaces change, the sky does not.
    a, b = _pair(3, Realism(texture_variety=True), cameras=2, size=(48, 64))
    for k in a.images:
        sky = a.sky[k]
        differs = (a.images[k] != b.images[k]).any(-1)
        assert not differs[sky].any() and differs[~sky].mean() > 0.3


def test_every_option_is_deterministic_for_a_seed():
    kw = dict(cameras=3, frames=2, size=(24, 32), lidar=False)
    r = PRESETS["varied"]
    a, b, c = (render_clip(s, realism=r, **kw) for s in (4, 4, 5))
    assert a.images.keys() == b.images.keys()
    for k in a.images:
        assert a.images[k].tobytes() == b.images[k].tobytes()
    assert a.metadata == b.metadata
    assert {k: m.tobytes() for k, m in a.masks.items()} == {k: m.tobytes() for k, m in b.masks.items()}
    ra, rc = a.metadata["realism"], c.metadata["realism"]
    assert ra["ego_speed_mps"] != rc["ego_speed_mps"]
    ga = [v["gains_rgb"] for v in ra["cameras"].values()]
    gc = [v["gains_rgb"] for v in rc["cameras"].values()]
    assert ga[0] != gc[0]
    # Noise differs between seeds, frames and cameras (not one pattern reused).
    n = Realism(read_noise=0.05)
    clean = render_clip(4, **kw)
    noisy = render_clip(4, realism=n, **kw)
    res = [_f(noisy.images[k]) - _f(clean.images[k]) for k in sorted(clean.images)]
    assert all(np.abs(x - y).mean() > 3 for x, y in zip(res, res[1:]))
    # Turning one option on does not change what another draws.
    g1 = render_clip(4, realism=Realism(exposure_stops=0.5), **kw).metadata["realism"]
    g2 = render_clip(4, realism=Realism(exposure_stops=0.5, read_noise=0.01,
                                        hood_cameras=("cam_front",)), **kw).metadata["realism"]
    assert [v["gains_rgb"] for v in g1["cameras"].values()] == [
        v["gains_rgb"] for v in g2["cameras"].values()]


def test_bad_realism_settings_are_one_clear_line():
    cases = [
        (lambda: Realism(vignetting=1.5), "realism.vignetting"),
        (lambda: Realism(jpeg_quality=101), "realism.jpeg_quality"),
        (lambda: Realism(hood_cameras=("cam_roof",)), "realism.hood_cameras"),
        (lambda: Realism(rig_cameras=(5, 3)), "realism.rig_cameras"),
        (lambda: Realism(ego_speed=(1.0, float("nan"))), "realism.ego_speed"),
        (lambda: render_clip(0, realism="photoreal"), "realism must be"),
        (lambda: parse_realism("real", ["vignetting=lots"]), "--realism-set vignetting"),
        (lambda: parse_realism("real", ["sharpness=1"]), "--realism-set expects FIELD=VALUE"),
        (lambda: parse_realism("real", ["read_noise=0.5"]), "realism.read_noise"),
    ]
    for make, text in cases:
        with pytest.raises(ValidationError, match=text.replace(".", r"\.")) as e:
            make()
        assert "\n" not in str(e.value)


def test_parse_realism_applies_overrides_to_a_preset():
    r = parse_realism("real", ["vignetting=0.3", "hood_cameras=cam_front,cam_left",
                               "ego_speed=5,6", "rig_cameras=4", "sky_variety=off",
                               "mount_height=none"])
    assert r.vignetting == 0.3 and r.hood_cameras == ("cam_front", "cam_left")
    assert r.ego_speed == (5.0, 6.0) and r.rig_cameras == (4, 4)
    assert not r.sky_variety and r.mount_height is None
    assert r.exposure_stops == PRESETS["real"].exposure_stops
    assert parse_realism(None) == Realism()


def test_cli_realism_preset_and_overrides(tmp_path, capsys):
    from splatnet.cli import main

    dst = tmp_path / "c"
    assert main(["synth", str(dst), "--seed", "2", "--frames", "1", "--size", "24x32",
                 "--no-lidar", "--realism", "varied", "--realism-set", "rig_cameras=4",
                 "--realism-set", "hood_cameras=cam_front", "--image-format", "png"]) == 0
    assert "4 cameras" in capsys.readouterr().out
    meta = json.loads((dst / "clip.json").read_text())
    assert len(meta["cameras"]) == 4
    stored = [p.suffix for p in (dst / "images").rglob("*") if p.is_file()]
    assert stored and set(stored) == {".png"}
    settings = meta["metadata"]["realism"]["settings"]
    assert settings["rig_cameras"] == [4, 4] and settings["hood_cameras"] == ["cam_front"]
    assert settings["vignetting"] == PRESETS["varied"].vignetting
    v = splatnet.Clip.load(dst).views()
    assert v.masks is not None and (~v.masks.numpy()).sum() > 0
    assert main(["synth", str(tmp_path / "d"), "--seed", "2", "--size", "24x32",
                 "--realism-set", "vignetting=2"]) == 1
    err = capsys.readouterr().err.strip()
    assert "realism.vignetting" in err and len(err.splitlines()) == 1
