"""Scene in time: groups carried along their tracks (against plain NumPy float64 geometry), actors
absent outside their spans, the dynamic background advanced, and rendering at each camera's time."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from scene.builders import FRAME_TIMES, HEIGHT, WIDTH, ego_layer, gaussians, make_rig, make_scene

import splatnet
from splatnet import Cameras
from splatnet.clip.actors import yaw_pose
from splatnet.errors import ValidationError
from splatnet.scene import Scene, SceneActor, Track
from splatnet.sh import eval_sh


def _quat_to_rot(q: np.ndarray) -> np.ndarray:
    """w, x, y, z (any length) → rotation matrices, float64 (written out here, not the library's)."""
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def _slices(scene: Scene, t: float) -> dict[str, slice]:
    """Where each group sits in gaussians_at(t): background first, then present actors in order."""
    out, start = {"background": slice(0, scene.background.num_gaussians)}, scene.background.num_gaussians
    for a in scene.actors.values():
        if a.track.span[0] <= t <= a.track.span[1]:
            out[a.id] = slice(start, start + a.gaussians.num_gaussians)
            start += a.gaussians.num_gaussians
    return out


@pytest.mark.parametrize("t", [0.0, 0.1, 0.13, 0.25, 0.4])
def test_an_actor_group_moves_exactly_along_its_track(t):
    scene = make_scene()
    car = scene.actors["car_1"]
    # The car's pose at t, from its entries with plain NumPy: frames 0.1 apart, each 1 m further
    # along x and turned 0.1 rad further about z.
    i = int(np.floor(t / 0.1 + 1e-9))
    a = t / 0.1 - i
    yaw, x = 0.1 * (i + a), 8.0 + i + a
    pose = yaw_pose(x, 0.5, 0.8, yaw)
    R, c = pose[:3, :3], pose[:3, 3]
    world = scene.gaussians_at(t)
    part = world[_slices(scene, t)["car_1"]]
    box = car.gaussians
    p_box = box.means.double().numpy()
    np.testing.assert_allclose(part.means.double().numpy(), p_box @ R.T + c, atol=2e-6)
    np.testing.assert_allclose(_quat_to_rot(part.quats.double().numpy()),
                               R @ _quat_to_rot(box.quats.double().numpy()), atol=2e-6)
    assert torch.equal(part.scales, box.scales) and torch.equal(part.opacities, box.opacities)
    # View-dependent colour travels with the car: seen along R·d in the world as along d in its box.
    d = torch.randn(box.num_gaussians, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    rd = d @ torch.from_numpy(R).T
    torch.testing.assert_close(eval_sh(part.sh.double(), rd), eval_sh(box.sh.double(), d),
                               atol=1e-5, rtol=0)
    assert not part.is_dynamic


def test_actors_are_absent_outside_their_span():
    scene = make_scene()
    n_bg, n_car, n_ped = 200, 60, 20
    assert scene.gaussians_at(0.0).num_gaussians == n_bg + n_car  # the pedestrian starts at 0.1
    assert scene.gaussians_at(0.1).num_gaussians == n_bg + n_car + n_ped
    assert scene.gaussians_at(0.3).num_gaussians == n_bg + n_car + n_ped
    assert scene.gaussians_at(0.31).num_gaussians == n_bg + n_car
    assert scene.gaussians_at(0.41).num_gaussians == n_bg  # after every track
    assert scene.gaussians_at(-5.0).num_gaussians == n_bg
    with pytest.raises(ValidationError, match="finite"):
        scene.gaussians_at(float("nan"))


def test_a_dynamic_background_is_advanced_to_t_and_returned_static():
    scene = make_scene(dynamic=True)
    bg = scene.background
    for t in (0.0, 0.27, 1.5):
        got = scene.gaussians_at(t)[: bg.num_gaussians]
        assert not got.is_dynamic
        expect = bg.means.double() + bg.velocities.double() * (t - bg.times.double())[:, None]
        torch.testing.assert_close(got.means.double(), expect, atol=1e-5, rtol=0)
        assert torch.equal(got.sh, bg.sh) and torch.equal(got.quats, bg.quats)
    # The same motion the renderer gives dynamic Gaussians for a camera at its timestamp.
    cams = scene.frame_cameras(2)
    cams = Cameras(cams.K, cams.cam_to_world, cams.width, cams.height,
                   timestamps=torch.tensor([0.27, 0.27], dtype=torch.float64))
    with torch.no_grad():
        ours = scene.replace(actors=[]).render(cams, background=torch.zeros(3))
        theirs = splatnet.render(bg, cams)
    torch.testing.assert_close(ours.rgb, theirs.rgb, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours.alpha, theirs.alpha, atol=1e-6, rtol=0)


def _sky_reference(scene: Scene, cams: Cameras) -> torch.Tensor:
    """The sky behind every pixel, ray directions worked out here: ``[C, H, W, 3]``."""
    out = []
    for c in range(len(cams)):
        K = cams.K[c].double().numpy()
        R = cams.cam_to_world[c, :3, :3].double().numpy()
        v, u = np.mgrid[0:HEIGHT, 0:WIDTH] + 0.5
        pix = np.stack([u, v, np.ones_like(u)], -1)
        dirs = pix @ np.linalg.inv(K).T @ R.T
        with torch.no_grad():
            out.append(scene.sky(torch.from_numpy(dirs).float()[None])[0])
    return torch.stack(out)


def test_render_at_camera_times_equals_rendering_the_snapshot_of_each_time():
    scene = make_scene(dynamic=True)
    # Four views at three times: two share t = 0.2 (one render call), one is between frames.
    cams = Cameras.cat([scene.frame_cameras(2), scene.frame_cameras(0)[[1]],
                        scene.frame_cameras(3)[[0]]])
    ts = torch.tensor([0.2, 0.2, 0.0, 0.25], dtype=torch.float64)
    cams = Cameras(cams.K, cams.cam_to_world, cams.width, cams.height, timestamps=ts)
    with torch.no_grad():
        out = scene.render(cams, backend="torch")
        sky = _sky_reference(scene, cams)
        for c in range(len(cams)):
            ref = splatnet.render(scene.gaussians_at(float(ts[c])), cams[[c]], backend="torch")
            torch.testing.assert_close(out.alpha[c], ref.alpha[0], atol=1e-6, rtol=0)
            torch.testing.assert_close(out.depth[c], ref.depth[0], atol=1e-5, rtol=0)
            torch.testing.assert_close(out.rgb[c], ref.rgb[0] + (1 - ref.alpha[0]) * sky[c],
                                       atol=1e-5, rtol=0)
    # Something is drawn, and the sky shows where nothing is.
    assert 0.05 < float(out.alpha.mean()) < 0.95
    # A given background colour replaces the sky.
    with torch.no_grad():
        grey = scene.render(cams[[0]], backend="torch", background=torch.full((3,), 0.5))
        ref = splatnet.render(scene.gaussians_at(0.2), cams[[0]], backend="torch")
    torch.testing.assert_close(grey.rgb[0], ref.rgb[0] + (1 - ref.alpha[0]) * 0.5, atol=1e-6, rtol=0)


def test_the_moving_car_is_where_its_track_says_in_the_image():
    scene = make_scene(sky=False).remove("ped-7")
    scene = scene.replace(background=scene.background[:0])  # the car alone
    cam = scene.frame_cameras(0, ["front"])
    w2c = np.linalg.inv(cam.cam_to_world[0].double().numpy())
    K = cam.K[0].double().numpy()

    def pixel(x, y, z):  # projected with NumPy
        p = w2c @ np.array([x, y, z, 1.0])
        return int(K[1, 1] * p[1] / p[2] + K[1, 2]), int(K[0, 0] * p[0] / p[2] + K[0, 2])

    # The car's centre at t = 0 is (8, 0.5, 0.8); moved 2.5 m to the left it is (8, 3, 0.8).
    before, after = pixel(8.0, 0.5, 0.8), pixel(8.0, 3.0, 0.8)
    with torch.no_grad():
        a0 = scene.render(cam).alpha[0, ..., 0]
        a1 = scene.move("car_1", 0.0, 2.5).render(cam).alpha[0, ..., 0]
    assert float(a0[before]) > 0.3 and float(a0[after]) < 1e-3
    assert float(a1[after]) > 0.3 and float(a1[before]) < 1e-3


def test_render_needs_timestamps_and_unbatched_cameras():
    scene = make_scene()
    cams = scene.frame_cameras(0)
    plain = Cameras(cams.K, cams.cam_to_world, cams.width, cams.height)
    with pytest.raises(ValidationError, match="timestamps: required"):
        scene.render(plain)
    batched = Cameras(cams.K[None], cams.cam_to_world[None], cams.width, cams.height,
                      timestamps=cams.timestamps[None])
    with pytest.raises(ValidationError, match="unbatched"):
        scene.render(batched)


def test_frame_cameras_are_ego_pose_times_mount():
    scene = make_scene()
    cams = scene.frame_cameras(3, ["front_left"])
    expect = scene.ego_to_world[3] @ scene.rig.camera("front_left").cam_to_ego
    np.testing.assert_allclose(cams.cam_to_world[0].double().numpy(), expect, atol=1e-6)
    assert cams.timestamps.tolist() == [FRAME_TIMES[3]] and cams.names == ["front_left"]
    with pytest.raises(ValidationError, match="unknown camera 'back'"):
        scene.frame_cameras(0, ["back"])
    with pytest.raises(ValidationError, match="frame index"):
        scene.frame_cameras(5)


def test_to_gaussians_is_the_snapshot_for_viewers():
    scene = make_scene(dynamic=True)
    g = scene.to_gaussians(0.2)
    ref = scene.gaussians_at(0.2)
    assert not g.is_dynamic and g.device.type == "cpu"
    assert all(torch.equal(a, b) for a, b in zip(g.fields().values(), ref.fields().values()))


def test_from_a_clip_actor_uses_the_clip_frame_times():
    actor = splatnet.clip.Actor("a1", "car", (4, 2, 1.5), np.array([1, 3]),
                                np.stack([yaw_pose(0, 0, 0, 0), yaw_pose(2, 0, 0, 0)]))
    sa = SceneActor.from_actor(actor, FRAME_TIMES, gaussians(5, 0))
    assert sa.track.times.tolist() == [0.1, 0.3] and sa.span == (0.1, 0.3)
    np.testing.assert_allclose(sa.pose_at(0.2)[:3, 3], [1.0, 0, 0], atol=1e-12)


def test_scenes_are_checked_and_immutable():
    scene = make_scene()
    car = scene.actors["car_1"]
    with pytest.raises(ValidationError, match="used twice"):
        scene.replace(actors=[car, car])
    with pytest.raises(ValidationError, match="static in its box frame"):
        car.replace(gaussians=gaussians(4, 0, dynamic=True))
    with pytest.raises(ValidationError, match="id must be"):
        car.replace(id="a,b")
    bad_ego = scene.ego_to_world.copy()
    bad_ego[2, 0, 0] = 3.0
    with pytest.raises(ValidationError, match=r"ego_to_world\[2\].*not rigid"):
        scene.replace(ego_to_world=bad_ego)
    with pytest.raises(ValidationError, match="strictly increasing"):
        scene.replace(frame_times=FRAME_TIMES[::-1].copy())
    with pytest.raises(ValidationError, match="metadata"):
        scene.replace(metadata={"x": float("nan")})
    with pytest.raises(ValidationError, match="background: scales"):
        g = gaussians(4, 0)
        scene.replace(background=splatnet.Gaussians(g.means, g.quats, -g.scales, g.opacities, g.sh,
                                                     check=False))
    with pytest.raises(dataclasses.FrozenInstanceError):
        scene.background = gaussians(4, 0)
    with pytest.raises(TypeError):
        scene.actors["x"] = car
    for array in (scene.frame_times, scene.ego_to_world, car.track.box_to_world, car.track.times,
                  scene.rig.cameras[0].K):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0
    times = FRAME_TIMES.copy()
    kept = scene.replace(frame_times=times)
    times[0] = -1.0  # the caller's array is theirs: the scene holds its own copy
    assert kept.frame_times[0] == 0.0
    assert make_rig().names == ["front", "front_left"]


def test_an_actor_may_be_made_by_hand_on_any_clock():
    tr = Track(np.array([-1.0, 2.5]), np.stack([yaw_pose(0, 0, 0, 0), yaw_pose(0, 0, 0, math.pi)]))
    sa = SceneActor("x", "", (1, 1, 1), tr, gaussians(3, 0))
    # Half-way: turned by 90 degrees (slerp), centre still at the origin.
    np.testing.assert_allclose(sa.pose_at(0.75)[:3, :3], yaw_pose(0, 0, 0, math.pi / 2)[:3, :3],
                               atol=1e-12)


def test_placed_actors_are_reused_only_while_nothing_changed():
    """gaussians_at keeps each actor's transformed copy between calls; it must never go stale."""
    scene = make_scene()
    car = scene.actors["car_1"]
    sl = _slices(scene, 0.15)["car_1"]
    first = scene.gaussians_at(0.15)
    scene.gaussians_at(0.25)  # another pose in between
    again = scene.gaussians_at(0.15)
    for k, v in first.fields().items():
        assert torch.equal(v, again.fields()[k]), k
    # What a caller gets is its own: writing into it changes no later answer.
    again.means.add_(100.0)
    assert torch.equal(scene.gaussians_at(0.15).means, first.means)
    # The actor's Gaussians edited in place (an optimiser's step): the next answer follows.
    with torch.no_grad():
        car.gaussians.means.add_(torch.tensor([0.0, 0.0, 1.0]))
    moved = scene.gaussians_at(0.15)[sl]
    torch.testing.assert_close(moved.means, first[sl].means + torch.tensor([0.0, 0.0, 1.0]),
                               atol=1e-5, rtol=0)


def test_gradients_reach_actor_gaussians_through_gaussians_at():
    scene = make_scene()
    car = scene.actors["car_1"]
    with torch.no_grad():
        scene.gaussians_at(0.2)  # a cached copy exists; autograd must not be handed it
    means = car.gaussians.means.detach().clone().requires_grad_(True)
    g = car.gaussians
    car_g = splatnet.Gaussians(means, g.quats, g.scales, g.opacities, g.sh)
    scene = scene.replace(actors=[car.replace(gaussians=car_g), scene.actors["ped-7"]])
    with torch.no_grad():
        scene.gaussians_at(0.2)
    world = scene.gaussians_at(0.2)
    world.means[_slices(scene, 0.2)["car_1"]].sum().backward()
    # d(sum of R·p + c)/dp = Rᵀ·1 for every Gaussian of the car.
    R = torch.from_numpy(car.pose_at(0.2)[:3, :3]).float()
    torch.testing.assert_close(means.grad, (R.T @ torch.ones(3)).expand_as(means), atol=1e-5, rtol=0)


def test_the_sky_can_be_left_out_where_the_gaussians_hide_it():
    scene = make_scene()
    cams = scene.frame_cameras(1)
    with torch.no_grad():
        exact = scene.render(cams, backend="torch")
        eps = 0.05
        fast = scene.render(cams, backend="torch", sky_min_transmittance=eps)
    seen = (1 - exact.alpha[..., 0]) > eps
    assert 0 < int(seen.sum()) < seen.numel()  # both kinds of pixel are present
    torch.testing.assert_close(fast.rgb[seen], exact.rgb[seen], atol=1e-6, rtol=0)
    gap = (exact.rgb - fast.rgb)[~seen]
    assert float(gap.min()) >= -1e-6 and float(gap.max()) <= eps + 1e-6
    assert float(gap.max()) > 0  # something was actually left out
    for bad in (-0.1, 1.0, float("nan"), True, "0.1"):
        with pytest.raises(ValidationError, match="sky_min_transmittance"):
            scene.render(cams, backend="torch", sky_min_transmittance=bad)


# A camera's exposure: gains and offsets per channel, with a little cross-talk, as [M | b].
EXPOSURE = np.array([[1.10, 0.02, 0.00, -0.03],
                     [0.00, 0.95, 0.01, 0.02],
                     [0.03, 0.00, 0.90, 0.05]])


def test_a_camera_with_a_colour_matrix_sees_the_scene_through_it():
    """``Scene.colour``: the render of a camera named as a colour camera is ``M · rgb + b`` of its
    plain render (sky composited), worked out here in numpy; any other camera's render, and every
    render with ``colour=False``, is the plain one."""
    plain = make_scene()
    scene = plain.replace(colour={"front_left": EXPOSURE})
    cams = Cameras.cat([scene.frame_cameras(1), scene.frame_cameras(3)[[1]]])  # front, fl, fl
    with torch.no_grad():
        ref = plain.render(cams, backend="torch")
        out = scene.render(cams, backend="torch")
        off = scene.render(cams, backend="torch", colour=False)
    assert torch.equal(off.rgb, ref.rgb) and torch.equal(out.rgb[0], ref.rgb[0])
    assert torch.equal(out.alpha, ref.alpha) and torch.equal(out.depth, ref.depth)
    for c in (1, 2):
        x = ref.rgb[c].double().numpy()
        want = x @ EXPOSURE[:, :3].T + EXPOSURE[:, 3]
        np.testing.assert_allclose(out.rgb[c].double().numpy(), want, atol=1e-6, rtol=0)
    # Cameras without names, or named otherwise, are rig-neutral.
    anon = Cameras(cams.K, cams.cam_to_world, cams.width, cams.height, timestamps=cams.timestamps)
    with torch.no_grad():
        assert torch.equal(scene.render(anon, backend="torch").rgb, ref.rgb)
    # The matrices travel with the scene through edits and device moves, read-only copies.
    moved = scene.remove("car_1").to("cpu")
    assert np.array_equal(moved.colour["front_left"], EXPOSURE)
    with pytest.raises(ValueError):
        moved.colour["front_left"][0, 0] = 2.0
    with pytest.raises(TypeError):
        moved.colour["front"] = EXPOSURE


def test_gradients_reach_the_gaussians_through_a_colour_matrix():
    scene = make_scene(sky=False)
    g = scene.background
    sh = g.sh.clone().requires_grad_(True)
    scene = scene.replace(background=splatnet.Gaussians(g.means, g.quats, g.scales, g.opacities, sh),
                          colour={"front": 2.0 * EXPOSURE})
    scene.render(scene.frame_cameras(0)[[0]], backend="torch").rgb.sum().backward()
    assert sh.grad is not None and float(sh.grad.abs().sum()) > 0


@pytest.mark.parametrize("colour, match", [
    ({"rear": EXPOSURE}, "'rear' is not a camera of the rig"),
    ({"front": EXPOSURE[:, :3]}, r"colour\['front'\]: expected a \[3, 4\]"),
    ({"front": np.where(np.eye(3, 4) > 0, np.nan, 0.0)}, r"colour\['front'\]: non-finite"),
    ({"front": np.array([["a"] * 4] * 3)}, r"colour\['front'\]: expected a \[3, 4\] matrix"),
    ([EXPOSURE], "colour: expected a mapping"),
])
def test_bad_colour_matrices_are_refused_naming_the_camera(colour, match):
    with pytest.raises(ValidationError, match=match):
        make_scene().replace(colour=colour)


def test_render_colour_must_be_a_bool():
    scene = make_scene()
    with pytest.raises(ValidationError, match="colour: expected True or False"):
        scene.render(scene.frame_cameras(0), colour="yes")


def test_the_ego_layer_is_drawn_over_its_camera_last_from_the_nearest_image_in_time():
    plain = make_scene()
    scene = plain.replace(ego=ego_layer(), colour={"front_left": EXPOSURE})
    cams = Cameras.cat([scene.frame_cameras(1), scene.frame_cameras(3)[[1]]])  # t 0.1, 0.1, 0.3
    with torch.no_grad():
        out = scene.render(cams, backend="torch")
        no_ego = scene.render(cams, backend="torch", ego=False)
        ref = plain.render(cams, backend="torch")
    assert torch.equal(out.rgb[0], ref.rgb[0])  # front: no layer
    body = torch.zeros(HEIGHT, WIDTH, dtype=torch.bool)
    body[-10:] = True
    # front_left at t = 0.1 shows the image of t = 0.0, at t = 0.3 the one of t = 0.4; as
    # recorded, not through the camera's colour matrix.
    assert bool((out.rgb[1][body] == 0.2).all()) and bool((out.rgb[2][body] == 0.7).all())
    assert torch.equal(out.rgb[1][~body], no_ego.rgb[1][~body])
    assert torch.equal(out.alpha, ref.alpha) and torch.equal(out.depth, ref.depth)
    # Without times, the first image; at another size, the mask and image resized.
    scene = plain.replace(ego=ego_layer(times=False))
    half = Cameras(cams.K[[2]] * torch.tensor([[0.5], [0.5], [1.0]]), cams.cam_to_world[[2]],
                   WIDTH // 2, HEIGHT // 2, timestamps=cams.timestamps[[2]], names=["front_left"])
    with torch.no_grad():
        small = scene.render(half, backend="torch").rgb[0]
    assert bool((small[-5:] == 0.2).all()) and not bool((small[:-5] == 0.2).all(-1).any())


@pytest.mark.parametrize("edit, match", [
    (lambda e: e.masks.update(rear=e.masks.pop("front_left")), "ego: expected masks, images"),
    (lambda e: [d.update(rear=d.pop("front_left")) for d in (e.masks, e.images, e.times)],
     r"ego\['rear'\]: not a camera of the rig"),
    (lambda e: e.masks.update(front_left=e.masks["front_left"].float()), r"\.mask: expected a bool"),
    (lambda e: e.images.update(front_left=e.images["front_left"][..., :2]), r"\.images: expected"),
    (lambda e: e.images.update(front_left=e.images["front_left"] * 2), r"in \[0, 1\]"),
    (lambda e: e.times.update(front_left=torch.zeros(3, dtype=torch.float64)), r"\.times: expected 2"),
])
def test_bad_ego_layers_are_refused_naming_the_camera(edit, match):
    e = ego_layer()
    edit(e)
    with pytest.raises(ValidationError, match=match):
        make_scene().replace(ego=e)


def test_the_upsample_filter_widens_the_gaussians_for_cameras_finer_than_the_networks():
    """``Scene.upsample``: a rig camera at twice its network-size focal length sees the
    Gaussians of its time widened (``widen_for_camera``, checked against its formula in
    tests/models); one at the network's size, or with ``upsample=False``, sees them as they
    are."""
    from splatnet.models.postprocessing import widen_for_camera
    from splatnet.scene.layers import UpsampleFilter

    plain = make_scene(sky=False)
    f = float(plain.rig.camera("front").K[1, 1])
    scene = plain.replace(upsample=UpsampleFilter({"front": f / 2, "front_left": f}, 0.5, HEIGHT))
    cams = scene.frame_cameras(2)  # front: 2x its network focal; front_left: 1x
    with torch.no_grad():
        out = scene.render(cams, backend="torch")
        off = scene.render(cams, backend="torch", upsample=False)
        ref = plain.render(cams, backend="torch")
        wide = splatnet.render(widen_for_camera(plain.gaussians_at(0.2), cams[[0]], f / 2, 0.5),
                               cams[[0]], backend="torch")
    assert torch.equal(off.rgb, ref.rgb) and torch.equal(out.rgb[1], ref.rgb[1])
    torch.testing.assert_close(out.rgb[0], wide.rgb[0], atol=1e-6, rtol=0)
    assert float((out.rgb[0] - ref.rgb[0]).abs().max()) > 1e-3
    # A camera of another name: r is its image height over the network's (48 here: r = 1,
    # nothing changes; 24: r = 2, and at focal f its lens at the network's size is f / 2, as
    # the front camera's).
    anon = Cameras(cams.K[[0]], cams.cam_to_world[[0]], cams.width, cams.height,
                   timestamps=cams.timestamps[[0]])
    half = scene.replace(upsample=UpsampleFilter({"front": f / 2, "front_left": f}, 0.5,
                                                 HEIGHT // 2))
    with torch.no_grad():
        assert torch.equal(scene.render(anon, backend="torch").rgb[0], ref.rgb[0])
        torch.testing.assert_close(half.render(anon, backend="torch").rgb[0], wide.rgb[0],
                                   atol=1e-6, rtol=0)


@pytest.mark.parametrize("focals, sigma, match", [
    ({"rear": 100.0}, 0.2, "'rear' is not a camera of the rig"),
    ({"front": -1.0}, 0.2, r"upsample.focals\['front'\]: expected a focal length"),
    ({}, 0.2, "upsample.focals: expected"),
    ({"front": 100.0}, 9.0, r"upsample.sigma: expected network pixels in \[0, 4\]"),
])
def test_bad_upsample_filters_are_refused(focals, sigma, match):
    from splatnet.scene.layers import UpsampleFilter

    with pytest.raises(ValidationError, match=match):
        make_scene().replace(upsample=UpsampleFilter(focals, sigma, 48))
