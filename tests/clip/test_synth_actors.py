"""Synthetic clips' actor tracks, lateral-offset target cameras and "without actors" truth
(issue 13).

Oracles are independent of the code under test: the layout's own meshes and analytic motion,
the manifest's per-object metadata (a separate code path), the LiDAR the clip writes and rays
cast through the boxes with plain numpy, and depth re-projected between cameras.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

pytest.importorskip("open3d")

import splatnet  # noqa: E402
from splatnet.cli import main  # noqa: E402
from splatnet.clip.synth import Realism, generate, render_clip  # noqa: E402
from splatnet.errors import ValidationError  # noqa: E402

SEED = 7
KW = dict(cameras=3, frames=3, size=(48, 80))
OFFSETS = (0.0, 1.5, -2.0)
OFFSET_NAMES = {0.0: "off0", 1.5: "off1.5", -2.0: "offm2"}


@pytest.fixture(scope="module")
def full():
    return render_clip(SEED, **KW, target_offsets=OFFSETS)


@pytest.fixture(scope="module")
def written(tmp_path_factory, full):
    """The same clip written (PNG images, float depth) and without every actor."""
    root = tmp_path_factory.mktemp("synth_actors")
    kw = dict(**KW, image_format="png", depth_format="npy")
    a = generate(root / "full", SEED, **kw, target_offsets=OFFSETS)
    b = generate(root / "empty", SEED, **kw, without_actors=[x.id for x in full.actors])
    return splatnet.Clip.load(a), splatnet.Clip.load(b)


def _world_points(pts_ego: np.ndarray, ego_to_world: np.ndarray) -> np.ndarray:
    return pts_ego.astype(np.float64) @ ego_to_world[:3, :3].T + ego_to_world[:3, 3]


def _box_local(pts: np.ndarray, box_to_world: np.ndarray) -> np.ndarray:
    return (pts - box_to_world[:3, 3]) @ box_to_world[:3, :3]


def _in_box(pts, size, box_to_world, margin=0.0):
    return np.all(np.abs(_box_local(pts, box_to_world)) <= np.asarray(size) / 2 + margin, axis=1)


def _layout_index(clip) -> dict[str, int]:
    """Actor id -> layout object, matched through the manifest metadata's objects (their
    ``id`` is the layout index): same kind, bottom centre at the metadata position (to its
    4-decimal rounding; a pedestrian's tight box may sit a little off its origin), same yaw."""
    objs = clip.metadata["objects"]
    out = {}
    for a in clip.actors:
        T = a.box_to_world[0]
        bottom = T[:3, 3] - T[:3, 2] * a.size[2] / 2
        yaw = np.arctan2(T[1, 0], T[0, 0])
        best = None
        for o in objs:
            if (a.label == "car") != o["kind"].endswith("car"):
                continue
            fr = o["frames"][0]
            dist = np.linalg.norm(bottom - np.array(fr["position"]))
            dyaw = abs((yaw - fr["yaw"] + np.pi) % (2 * np.pi) - np.pi)
            if dyaw < 1e-4 and (best is None or dist < best[0]):
                best = (dist, o["id"])
        assert best is not None and best[0] < (1e-3 if a.label == "car" else 0.25), a.id
        out[a.id] = best[1]
    assert len(set(out.values())) == len(out)
    return out


# ---------------------------------------------------------------------------------- actors
def test_every_car_and_pedestrian_is_an_actor(full):
    ids = [a.id for a in full.actors]
    assert len(ids) == len(set(ids)) == len(full.metadata["objects"])
    assert all(re.fullmatch(r"(car|ped)_\d+", i) for i in ids)
    assert {a.label for a in full.actors} == {"car", "pedestrian"}
    kinds = {o["id"]: o["kind"] for o in full.metadata["objects"]}
    for aid, i in _layout_index(full).items():
        a = next(x for x in full.actors if x.id == aid)
        assert a.frames.tolist() == [0, 1, 2]
        assert a.moving.tolist() == [kinds[i] != "parked_car"] * 3
        assert aid.startswith("ped_") == (kinds[i] == "pedestrian")


def test_boxes_are_the_tight_boxes_of_the_meshes_at_every_frame(full):
    """The object's own triangles, posed by the layout at each frame time and taken to the
    world (the ego frame of frame 0), fill the box exactly: inside it, touching all six sides."""
    lay = full.layout
    E0_inv = np.linalg.inv(lay.ego_pose(0.0))
    for aid, i in _layout_index(full).items():
        a = next(x for x in full.actors if x.id == aid)
        o = lay.objects[i]
        for f, t in enumerate(full.timestamps):
            T = E0_inv @ lay.object_pose(i, t)
            v = o.mesh.vertices @ T[:3, :3].T + T[:3, 3]
            q = _box_local(v, a.box_to_world[f])
            half = np.asarray(a.size) / 2
            np.testing.assert_allclose(q.max(0), half, atol=1e-9, err_msg=aid)
            np.testing.assert_allclose(q.min(0), -half, atol=1e-9, err_msg=aid)
        # Box z is up, x along the object's heading.
        np.testing.assert_allclose(a.box_to_world[:, :3, 2], np.tile([0, 0, 1.0], (3, 1)), atol=1e-12)
        if a.label == "car":
            assert 3.5 < a.size[0] < 5.4 and 1.6 < a.size[1] < 2.1 and 1.2 < a.size[2] < 2.1
        else:
            assert 0.2 < a.size[0] < 0.8 and 0.4 < a.size[1] < 0.9 and 1.5 < a.size[2] < 2.0


def test_moving_tracks_follow_the_objects_motion(full):
    """Moving actors advance by speed x dt between frames (speed from the layout's motion: a
    lane at lateral offset d of a curve of curvature k moves at v (1 - k d)), along their
    heading and as the metadata's velocities say; parked cars stay put."""
    lay, dt = full.layout, 0.1
    meta = {o["id"]: o for o in full.metadata["objects"]}
    moved = 0
    for aid, i in _layout_index(full).items():
        a = next(x for x in full.actors if x.id == aid)
        p = a.box_to_world[:, :3, 3]
        step = np.diff(p, axis=0)  # [2, 3]
        o = lay.objects[i]
        if o.motion is None:
            assert (a.box_to_world == a.box_to_world[0]).all(), aid
            continue
        d, _, v, _ = o.motion
        speed = abs(v) * (1.0 - lay.centerline.kappa * d)
        np.testing.assert_allclose(np.linalg.norm(step, axis=1), speed * dt, rtol=1e-6, err_msg=aid)
        heading = a.box_to_world[:-1, :3, 0]
        assert (np.sum(step * heading, axis=1) > 0.9999 * np.linalg.norm(step, axis=1)).all(), aid
        vel = np.array([f["velocity"] for f in meta[i]["frames"]])
        np.testing.assert_allclose(step / dt, 0.5 * (vel[1:] + vel[:-1]), atol=2e-3, err_msg=aid)
        moved += 1
    assert moved >= 5


def test_actors_round_trip_through_clip_load(full, written):
    clip, _ = written
    manifest = json.loads((clip.path / "clip.json").read_text())
    assert manifest["version"] == 1.1 and len(manifest["actors"]) == len(full.actors)
    assert [a.id for a in clip.actors] == [a.id for a in full.actors]
    for a, b in zip(clip.actors, full.actors):
        assert (a.label, a.size) == (b.label, b.size)
        assert a.frames.tolist() == b.frames.tolist() and a.moving.tolist() == b.moving.tolist()
        np.testing.assert_allclose(a.box_to_world, b.box_to_world, atol=1e-9)
        # Poses share the ego poses' frame.
    np.testing.assert_allclose(clip.ego_to_world.numpy(), np.stack(full.ego_to_world), atol=1e-9)


def test_lidar_returns_of_actors_lie_in_their_boxes(full, written):
    """The written LiDAR with and without every actor: the returns that vanish are the actors'
    own surfaces; each lies in an actor's box at that frame, the boxes are tight on them, and
    nothing is left inside any box once the actors are gone."""
    clip, empty = written
    per_actor = {a.id: [] for a in clip.actors}
    for f in range(clip.num_frames):
        pa, pb = clip.lidar(f).numpy(), empty.lidar(f).numpy()
        kept = {r.tobytes() for r in pb}
        gone = np.array([r.tobytes() not in kept for r in pa])
        pts = pa[gone].astype(np.float64)
        assert len(pts) > 500
        owner = np.full(len(pts), -1)
        for k, a in enumerate(clip.actors):
            owner[_in_box(pts, a.size, a.box_to_world[f], margin=0.01)] = k
            per_actor[a.id].append(_box_local(pts[owner == k], a.box_to_world[f]) /
                                   (np.asarray(a.size) / 2))
            # Without the actors, no return lies inside a box (3 cm in from its faces).
            rest = pb.astype(np.float64)
            assert not _in_box(rest, np.asarray(a.size) - 0.06, a.box_to_world[f]).any(), a.id
        assert (owner >= 0).all(), pts[owner < 0][:5]
    seen = 0
    for aid, q in per_actor.items():
        q = np.concatenate(q)
        if len(q) >= 50:  # well seen: some return reaches a face of the box
            assert np.abs(q).max() > 0.97, aid
            seen += 1
    assert seen >= 5


# ------------------------------------------------------------------------- without actors
def _ray_hits_boxes(K, cam_to_world, h, w, boxes, margin=0.02) -> np.ndarray:
    """``[H, W]`` bool: the pixel's ray (from the camera centre, forwards) meets one of the
    ``boxes`` ``[(size, box_to_world)]`` grown by ``margin`` (slab test)."""
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    d_cam = np.stack([(xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1], np.ones_like(xs)], -1)
    d = d_cam.reshape(-1, 3) @ cam_to_world[:3, :3].T
    out = np.zeros(h * w, bool)
    for size, T in boxes:
        o = (cam_to_world[:3, 3] - T[:3, 3]) @ T[:3, :3]
        db = d @ T[:3, :3]
        half = np.asarray(size) / 2 + margin
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (-half - o) / db, (half - o) / db
        lo = np.where(np.isnan(t1), -np.inf, np.minimum(t1, t2)).max(1)
        hi = np.where(np.isnan(t2), np.inf, np.maximum(t1, t2)).min(1)
        parallel_out = ((db == 0) & (np.abs(o) > half)).any(1)
        out |= (lo <= hi) & (hi >= 0) & ~parallel_out
    return out.reshape(h, w)


def _removal_pair(count_cars=1, **kw):
    """A 2-frame clip (``kw`` options), its most LiDAR-seen moving car(s) and pedestrian, and
    the same clip without them."""
    args = {**KW, "frames": 2, **kw}
    a = render_clip(SEED, **args)
    pts = _world_points(a.lidar[0], a.ego_to_world[0])
    hits = {x.id: _in_box(pts, x.size, x.box_to_world[0], 0.01).sum() for x in a.actors}
    cars = sorted((x for x in a.actors if x.label == "car" and x.moving[0]),
                  key=lambda x: -hits[x.id])[:count_cars]
    peds = sorted((x for x in a.actors if x.label == "pedestrian"), key=lambda x: -hits[x.id])
    gone = cars + peds[:1]
    b = render_clip(SEED, **args, without_actors=[x.id for x in gone])
    return a, b, gone


def _changed(a, b, key):
    return np.any(a.images[key] != b.images[key], axis=-1)


def _check_removed(a, b, gone, exact_outside=True):
    """Outside the removed boxes' rays nothing changes (or, with shadows, only gets brighter
    where a shadow was); where the full clip saw a removed actor, depth changes."""
    h, w = a.height, a.width
    inside_total = 0
    for f in range(len(a.timestamps)):
        for cam in a.cameras:
            key = (f, cam.name)
            c2w = a.ego_to_world[f] @ cam.cam_to_ego
            near = _ray_hits_boxes(cam.K, c2w, h, w, [(g.size, g.box_to_world[f]) for g in gone])
            far = ~near
            assert (a.depths[key][far] == b.depths[key][far]).all(), key
            assert (a.sky[key][far] == b.sky[key][far]).all(), key
            if exact_outside:
                assert not _changed(a, b, key)[far].any(), key
            else:
                brighter = np.all(b.images[key] >= a.images[key], axis=-1)
                assert brighter[far].all(), key
            # Pixels whose full-clip surface lies inside a removed box (3 cm in from its faces:
            # not the ground it stands on) now see past it.
            ys, xs = np.mgrid[0:h, 0:w] + 0.5
            z = a.depths[key]
            pc = np.stack([(xs - cam.K[0, 2]) / cam.K[0, 0] * z, (ys - cam.K[1, 2]) / cam.K[1, 1] * z,
                           z], -1).reshape(-1, 3)
            pw = pc @ c2w[:3, :3].T + c2w[:3, 3]
            on = np.zeros(h * w, bool)
            for g in gone:
                on |= _in_box(pw, np.asarray(g.size) - 0.06, g.box_to_world[f])
            on = on.reshape(h, w) & (z > 0)
            assert near[on].all()
            da, db = a.depths[key][on], b.depths[key][on]
            assert ((db > da + 0.05) | (db == 0)).all(), key
            inside_total += on.sum()
            if on.sum() >= 20:
                assert _changed(a, b, key)[on].mean() > 0.5, key
    assert inside_total >= 100


def test_without_actors_changes_only_what_the_removed_actors_covered():
    a, b, gone = _removal_pair(count_cars=2, shadows=False)
    _check_removed(a, b, gone)
    ids = {g.id for g in gone}
    assert {x.id for x in b.actors} == {x.id for x in a.actors} - ids
    # Everything else about the actors is the same.
    rest = {x.id: x for x in b.actors}
    for x in a.actors:
        if x.id in rest:
            assert (x.box_to_world == rest[x.id].box_to_world).all() and x.size == rest[x.id].size
    assert b.metadata["without_actors"] == [g.id for g in gone]
    assert len(b.metadata["objects"]) == len(a.metadata["objects"]) - len(gone)
    assert b.metadata["cameras"] == a.metadata["cameras"]


def test_without_actors_also_removes_their_shadows():
    a, b, gone = _removal_pair()  # shadows on
    _check_removed(a, b, gone, exact_outside=False)


def test_without_actors_keeps_the_full_clips_exposure_and_looks():
    """Auto exposure is metered on the full street, so even with it pixels away from the
    removed actors do not change."""
    r = Realism(auto_exposure=0.45, exposure_stops=0.5, white_balance=0.1, vignetting=0.3)
    a, b, gone = _removal_pair(shadows=False, realism=r)
    _check_removed(a, b, gone)
    assert a.metadata["realism"] == b.metadata["realism"]


def test_without_actors_keeps_the_target_cameras_where_the_full_clip_puts_them():
    """Target cameras are placed clear of the full street's cars (seed 6: one of its targets
    would move if placed on the street without them)."""
    kw = dict(cameras=3, frames=2, size=(8, 8), targets=2, lidar=False, shadows=False)
    a = render_clip(6, **kw)
    b = render_clip(6, **kw, without_actors=[x.id for x in a.actors])
    assert b.actors == [] and b.metadata["objects"] == []
    assert [c.name for c in a.cameras] == [c.name for c in b.cameras]
    for x, y in zip(a.cameras, b.cameras):
        assert (x.cam_to_ego == y.cam_to_ego).all(), x.name


def test_unknown_actor_ids_are_one_error_listing_the_valid_ones(full):
    cars = sum(a.label == "car" for a in full.actors)
    with pytest.raises(ValidationError) as e:
        render_clip(SEED, **KW, without_actors=["car_0", "car_999", "bus_1"])
    msg = str(e.value)
    assert "car_999, bus_1" in msg and f"car_0..car_{cars - 1}" in msg and "\n" not in msg
    for bad in ("car_0", None, [3]):
        with pytest.raises(ValidationError, match="list of actor ids"):
            render_clip(SEED, **KW, without_actors=bad)
    with pytest.raises(ValidationError, match="car_0 given twice"):
        render_clip(SEED, **KW, without_actors=["car_0", "car_0"])


# ------------------------------------------------------------------------- target offsets
def test_offset_cameras_are_the_rig_shifted_along_the_ego_y_axis(full, written):
    clip, _ = written
    rig = clip.rig_camera_names
    assert len(rig) == 3
    names = [f"{r}.{OFFSET_NAMES[o]}" for o in OFFSETS for r in rig]
    assert clip.target_camera_names == names
    meta = clip.metadata["cameras"]
    for o in OFFSETS:
        for r in rig:
            n = f"{r}.{OFFSET_NAMES[o]}"
            cam, src = clip.camera(n), clip.camera(r)
            assert cam.role == "target" and meta[n]["shifted_from"] == r
            assert meta[n]["lateral_offset_m"] == o
            np.testing.assert_array_equal(cam.K, src.K)
            for f in range(clip.num_frames):
                E = clip.ego_to_world[f].double().numpy()
                a, b = clip.cam_to_world(f, n), clip.cam_to_world(f, r)
                a, b = (np.asarray(x, dtype=np.float64) for x in (a, b))
                np.testing.assert_allclose(a[:3, :3], b[:3, :3], atol=1e-12)
                np.testing.assert_allclose(a[:3, 3] - b[:3, 3], o * E[:3, 1], atol=1e-9)
    # The zero offset renders exactly what the rig camera sees.
    v = clip.views(cameras=rig + [f"{r}.off0" for r in rig])
    k = len(rig)
    for f in range(clip.num_frames):
        i = f * 2 * k
        assert (v.images[i:i + k] == v.images[i + k:i + 2 * k]).all()
        assert (v.depths[i:i + k] == v.depths[i + k:i + 2 * k]).all()


def _reprojection_agreement(depth_a, K_a, c2w_a, depth_b, K_b, c2w_b) -> float:
    """Share of camera a's depth pixels that, lifted to 3D and projected into b, land on a
    pixel of b whose depth is within 2 % of theirs (nearest pixel)."""
    h, w = depth_a.shape
    ys, xs = np.mgrid[0:h, 0:w] + 0.5
    m = depth_a > 0
    z = depth_a[m]
    pc = np.stack([(xs[m] - K_a[0, 2]) / K_a[0, 0] * z, (ys[m] - K_a[1, 2]) / K_a[1, 1] * z, z], 1)
    pw = pc @ c2w_a[:3, :3].T + c2w_a[:3, 3]
    w2c = np.linalg.inv(c2w_b)
    q = pw @ w2c[:3, :3].T + w2c[:3, 3]
    front = q[:, 2] > 0.5
    u = K_b[0, 0] * q[front, 0] / q[front, 2] + K_b[0, 2]
    v = K_b[1, 1] * q[front, 1] / q[front, 2] + K_b[1, 2]
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    zb = depth_b[v[inside].astype(int), u[inside].astype(int)]
    zq = q[front][inside, 2]
    assert inside.sum() > 200
    return float(np.mean(np.abs(zb - zq) < 0.02 * zq))


def test_offset_cameras_see_from_the_shifted_pose(written):
    """Depth of the rig camera, re-projected into the shifted camera's pose, matches what the
    shifted camera rendered; into the unshifted pose it does not."""
    clip, _ = written
    v = clip.views(cameras=["cam_front", "cam_front.off1.5", "cam_front.offm2"], frames=[1])
    d = v.depths.numpy()[..., 0]
    K = v.cameras.K.double().numpy()
    c2w = v.cameras.cam_to_world.double().numpy()
    for j in (1, 2):
        shifted = _reprojection_agreement(d[0], K[0], c2w[0], d[j], K[j], c2w[j])
        unshifted = _reprojection_agreement(d[0], K[0], c2w[0], d[j], K[j], c2w[0])
        assert shifted > 0.7 and unshifted < shifted - 0.2, (j, shifted, unshifted)


def test_offsets_leave_the_rest_of_the_clip_alone(full):
    plain = render_clip(SEED, **KW)
    for key, img in plain.images.items():
        assert (full.images[key] == img).all() and (full.depths[key] == plain.depths[key]).all()
    for a, b in zip(plain.lidar, full.lidar):
        assert (a == b).all()
    meta = dict(full.metadata)
    meta["cameras"] = {k: v for k, v in meta["cameras"].items() if "." not in k}
    assert meta == plain.metadata


def test_offset_cameras_share_their_rig_cameras_look():
    r = Realism(auto_exposure=0.45, exposure_stops=0.5, white_balance=0.1, vignetting=0.3,
                hood_cameras=("cam_front",), hood_height=(0.15, 0.2))
    c = render_clip(3, cameras=2, frames=2, size=(32, 48), lidar=False, realism=r,
                    target_offsets=[0.0, 1.0])
    for f in range(2):
        for cam in ("cam_front", "cam_back"):
            assert (c.images[(f, cam)] == c.images[(f, f"{cam}.off0")]).all()
    assert (c.masks["cam_front.off0"] == c.masks["cam_front"]).all()
    assert (c.masks["cam_front.off1"] == c.masks["cam_front"]).all()
    assert "cam_back.off1" not in c.masks
    cams = c.metadata["realism"]["cameras"]
    assert cams["cam_front.off1"]["gains_rgb"] == cams["cam_front"]["gains_rgb"]
    assert cams["cam_front.off1"]["auto_exposure_gain"] == cams["cam_front"]["auto_exposure_gain"]


def test_bad_target_offsets_are_rejected():
    for bad, match in (([float("nan")], "target_offsets"), ([25.0], r"\[-20, 20\]"),
                       (list(range(17)), "at most 16"), ("1,2", "list of metres"), (None, "list"),
                       ([1.0, 1.0004], "same cameras"), ([True], "target_offsets")):
        with pytest.raises(ValidationError, match=match):
            render_clip(SEED, **KW, target_offsets=bad)


# ----------------------------------------------------------------- determinism and the CLI
def test_same_arguments_same_bytes(tmp_path, full):
    kw = dict(cameras=2, frames=2, size=(32, 48), target_offsets=[1.0, -1.0],
              without_actors=[full.actors[0].id, full.actors[-1].id])
    a, b = generate(tmp_path / "a", SEED, **kw), generate(tmp_path / "b", SEED, **kw)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_cli_target_offsets_and_without_actors(tmp_path, capsys, full):
    dst = tmp_path / "c"
    gone = [x.id for x in full.actors if x.label == "car"][:2]
    assert main(["synth", str(dst), "--seed", str(SEED), "--cameras", "2", "--frames", "3",
                 "--size", "32x48", "--no-lidar", "--target-offsets=-1,0.5",
                 "--without-actors", ",".join(gone)]) == 0
    assert "6 cameras" in capsys.readouterr().out
    c = splatnet.Clip.load(dst)
    assert c.target_camera_names == ["cam_front.offm1", "cam_back.offm1", "cam_front.off0.5",
                                     "cam_back.off0.5"]
    assert {a.id for a in c.actors} == {a.id for a in full.actors} - set(gone)
    assert c.metadata["without_actors"] == gone
    # One line naming the option and the valid ids.
    assert main(["synth", str(tmp_path / "d"), "--seed", str(SEED), "--size", "32x48",
                 "--without-actors", "car_999"]) == 1
    err = capsys.readouterr().err.strip()
    assert "car_999" in err and "car_0.." in err and len(err.splitlines()) == 1
    assert main(["synth", str(tmp_path / "e"), "--seed", "1", "--count", "2",
                 "--without-actors", "car_0"]) == 1
    assert "--without-actors" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["synth", str(tmp_path / "f"), "--seed", "1", "--target-offsets", "1,x"])
    assert "--target-offsets" in capsys.readouterr().err
