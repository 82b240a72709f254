"""``refine_scene``: photometric refinement of a 4D scene with each actor's Gaussians in its box
frame. Targets are renders of a known scene; errors are measured here with plain L1 over
``Scene.render``; gradients are checked against central finite differences of that L1."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scene.builders import FRAME_TIMES, gaussians, make_rig, make_scene, make_sky

from splatnet import Cameras, Gaussians
from splatnet.clip.actors import yaw_pose
from splatnet.errors import ValidationError
from splatnet.optimization import OptimConfig, refine_scene
from splatnet.scene import Scene, SceneActor, Track

# Many small renders and SSIM convolutions: one torch thread is ~10x faster on the shared 2 cores.
pytestmark = pytest.mark.usefixtures("one_thread")


def _views(scene: Scene, frames, truth: Scene | None = None) -> SimpleNamespace:
    """The rig's cameras at ``frames`` (stamped with their times) and ``truth``'s renders."""
    cams = [scene.frame_cameras(f) for f in frames]
    cams = Cameras(torch.cat([c.K for c in cams]), torch.cat([c.cam_to_world for c in cams]),
                   cams[0].width, cams[0].height, timestamps=torch.cat([c.timestamps for c in cams]))
    with torch.no_grad():
        images = (truth or scene).render(cams).rgb.clamp(0, 1).float()
    return SimpleNamespace(cameras=cams, images=images)


def _l1(scene: Scene, views) -> list[float]:
    """Mean absolute error of each view's render (sky composited, as refinement sees it)."""
    with torch.no_grad():
        rgb = scene.render(views.cameras).rgb
    return [float((rgb[v] - views.images[v].to(rgb)).abs().mean()) for v in range(len(rgb))]


def _perturbed(g: Gaussians, seed: int, colour: float = 0.3, position: float = 0.0) -> Gaussians:
    gen = torch.Generator().manual_seed(seed)
    sh = g.sh.clone()
    sh[:, 0] += colour * torch.randn(sh[:, 0].shape, generator=gen)
    means = g.means + position * torch.randn(g.means.shape, generator=gen)
    return Gaussians(means, g.quats, g.scales, g.opacities, sh, g.velocities, g.times)


def _start(truth: Scene, *, colour: float = 0.3, position: float = 0.05) -> Scene:
    return truth.replace(
        background=_perturbed(truth.background, 10, colour, position),
        actors=[a.replace(gaussians=_perturbed(a.gaussians, 11 + i, colour, position))
                for i, a in enumerate(truth.actors.values())])


def _turning_car_scene(dtype=torch.float32, *, x0: float = 7.0, turn: float = 0.8,
                       wall: int = 300) -> Scene:
    """A background wall far ahead and one car ``x0`` m in front that drives 3 m and turns by
    ``turn`` rad between frames 0 and 2 (then stands still)."""
    poses = [yaw_pose(x0 + 1.5 * min(i, 2), 0.5 - 0.4 * min(i, 2), 0.8, turn / 2 * min(i, 2))
             for i in range(5)]
    car = SceneActor("car_1", "car", (4.0, 1.8, 1.5), Track(FRAME_TIMES.copy(), np.stack(poses)),
                     gaussians(80, 21, sh_degree=1, extent=(4.0, 1.8, 1.5)).to(dtype=dtype))
    far = gaussians(wall, 22, sh_degree=1, centre=(30.0, 0.0, 1.0), extent=(2.0, 30.0, 8.0))
    return Scene(background=far.to(dtype=dtype), actors=[car], rig=make_rig(),
                 frame_times=FRAME_TIMES.copy(),
                 ego_to_world=np.stack([yaw_pose(0.2 * i, 0.0, 0.0, 0.0) for i in range(5)]),
                 sky=make_sky() if dtype == torch.float32 else None)


# ------------------------------------------------------------------------------------------ tests
def test_refinement_lowers_the_loss_and_keeps_tracks_rig_and_sky():
    truth = make_scene()
    start = _start(truth)
    views = _views(start, [0, 2], truth)
    before = _l1(start, views)
    out = refine_scene(start, views, 60)
    after = _l1(out, views)
    assert sum(after) < 0.6 * sum(before), (before, after)
    assert all(a < b for a, b in zip(after, before)), (before, after)
    # tracks untouched (bit for bit: the very same objects), and everything around them
    assert list(out.actors) == list(start.actors)
    for aid, a in start.actors.items():
        b = out.actors[aid]
        assert b.track is a.track
        assert b.track.box_to_world.tobytes() == a.track.box_to_world.tobytes()
        assert b.track.times.tobytes() == a.track.times.tobytes()
        assert (b.label, b.size) == (a.label, a.size)
        assert b.gaussians.num_gaussians == a.gaussians.num_gaussians
        assert b.gaussians.sh_degree == a.gaussians.sh_degree
    assert out.rig is start.rig and out.sky is start.sky
    assert out.frame_times.tobytes() == start.frame_times.tobytes()
    assert out.ego_to_world.tobytes() == start.ego_to_world.tobytes()
    assert out.metadata["refine"]["steps"] == 60 and out.metadata["source"] == "hand-built"
    # the input scene is not modified
    assert _l1(start, views) == before


def test_dynamic_background_keeps_its_times():
    truth = make_scene(dynamic=True)
    start = _start(truth)
    views = _views(start, [1, 3], truth)
    out = refine_scene(start, views, 30)
    assert out.background.is_dynamic
    assert torch.equal(out.background.times, start.background.times)
    assert sum(_l1(out, views)) < sum(_l1(start, views))


def test_zero_learning_rates_change_nothing():
    start = _start(make_scene())
    views = _views(start, [0, 2], make_scene())
    cfg = OptimConfig(sh_interval=0, lr_means=0.0, lr_means_final=0.0, lr_sh_dc=0.0,
                      lr_sh_rest=0.0, lr_opacity=0.0, lr_scales=0.0, lr_quats=0.0,
                      lr_velocities=0.0)
    cfg.densify.enabled = False
    out = refine_scene(start, views, 8, config=cfg)
    pairs = [(out.background, start.background)] + [
        (out.actors[i].gaussians, start.actors[i].gaussians) for i in start.actors]
    for new, old in pairs:
        assert torch.equal(new.means, old.means) and torch.equal(new.sh, old.sh)
        unit = old.quats / old.quats.norm(dim=-1, keepdim=True)
        torch.testing.assert_close(new.quats, unit, rtol=0, atol=1e-6)
        torch.testing.assert_close(new.scales, old.scales, rtol=1e-6, atol=0)
        torch.testing.assert_close(new.opacities, old.opacities, rtol=0, atol=1e-6)


def test_an_actor_seen_at_one_time_is_corrected_at_another():
    """The car's colours are wrong; training on views of frame 2 only (where it has driven 3 m on
    and turned by 0.3 rad) must also improve it at frame 0, which refinement never saw: its
    Gaussians are corrected in the box frame, so they are right wherever the track carries them
    (measured here: −80 % error at frame 2, −27 % at frame 0, whose view of the car differs)."""
    truth = _turning_car_scene(x0=10.0, turn=0.3)
    start = truth.replace(actors=[a.replace(gaussians=_perturbed(a.gaussians, 5, colour=0.5))
                                  for a in truth.actors.values()])
    train = _views(start, [2], truth)
    held_out = _views(start, [0], truth)
    before_train, before_held = sum(_l1(start, train)), sum(_l1(start, held_out))
    out = refine_scene(start, train, 60)
    assert sum(_l1(out, train)) < 0.5 * before_train
    assert sum(_l1(out, held_out)) < 0.85 * before_held


def test_both_frames_improve_when_the_actor_moves_between_them():
    truth = _turning_car_scene()
    start = _start(truth, colour=0.4, position=0.03)
    views = _views(start, [0, 2], truth)
    before = _l1(start, views)
    out = refine_scene(start, views, 60)
    after = _l1(out, views)
    assert all(a < 0.7 * b for a, b in zip(after, before)), (before, after)


@pytest.mark.parametrize("field, threshold", [("means", 1e-4), ("sh_dc", 2e-5)])
def test_first_step_follows_the_finite_difference_gradient_in_the_box_frame(field, threshold):
    """Adam's first step moves every parameter by −lr · sign(∂loss/∂p). One step on one view of
    frame 2 (the car turned by 0.8 rad) with only ``field``'s rate: the box-frame update must have
    the sign of minus the finite-difference gradient of the L1 loss of ``Scene.render`` with
    respect to the box-frame parameters."""
    truth = _turning_car_scene(wall=40)
    start = truth.replace(actors=[a.replace(gaussians=_perturbed(a.gaussians, 7, 0.4, 0.1))
                                  for a in truth.actors.values()])
    views = _views(start, [2], truth)
    views = SimpleNamespace(cameras=views.cameras[[0]], images=views.images[[0]])
    lr = 1e-3
    zero = dict(lr_means=0.0, lr_means_final=0.0, lr_sh_dc=0.0, lr_sh_rest=0.0, lr_opacity=0.0,
                lr_scales=0.0, lr_quats=0.0, lr_velocities=0.0)
    zero.update({"means": dict(lr_means=lr, lr_means_final=lr), "sh_dc": dict(lr_sh_dc=lr)}[field])
    cfg = OptimConfig(sh_interval=0, ssim_weight=0.0, scene_extent=1.0, backend="cpu", **zero)
    cfg.densify.enabled = False
    out = refine_scene(start, views, 1, config=cfg)
    car = start.actors["car_1"]
    g0 = car.gaussians

    def get(g: Gaussians) -> torch.Tensor:
        return g.means if field == "means" else g.sh[:, 0]

    delta = (get(out.actors["car_1"].gaussians) - get(g0)).flatten()
    target = views.images[0].double()

    def loss(values: torch.Tensor) -> float:
        means, sh = g0.means, g0.sh.clone()
        if field == "means":
            means = values.reshape(g0.means.shape)
        else:
            sh[:, 0] = values.reshape(sh[:, 0].shape)
        g = Gaussians(means, g0.quats, g0.scales, g0.opacities, sh)
        s = start.replace(actors=[car.replace(gaussians=g)])
        with torch.no_grad():
            rgb = s.render(views.cameras, backend="cpu").rgb[0]
        return float((rgb - target).abs().mean())

    # the 12 Gaussians nearest the camera at frame 2 (box frame -> world with the track's pose)
    pose = torch.from_numpy(car.track.pose_at(float(views.cameras.timestamps[0]))).float()
    world = g0.means @ pose[:3, :3].T + pose[:3, 3]
    near = (world - views.cameras.cam_to_world[0, :3, 3]).norm(dim=-1).argsort()[:12]
    coords = (near[:, None] * 3 + torch.arange(3)).flatten()
    x0 = get(g0).flatten().clone()
    h = 1e-3
    fd = torch.zeros(len(coords))
    for j, i in enumerate(coords.tolist()):
        xp, xm = x0.clone(), x0.clone()
        xp[i] += h
        xm[i] -= h
        fd[j] = (loss(xp) - loss(xm)) / (2 * h)
    strong = fd.abs() > threshold
    assert int(strong.sum()) >= 18, fd  # the car fills part of the view: its parameters matter
    torch.testing.assert_close(delta[coords][strong], -lr * torch.sign(fd[strong]), rtol=1e-3,
                               atol=1e-9)
    assert bool((delta[coords][fd == 0] == 0).all())  # no gradient (e.g. a clamped colour): no step


def test_bad_inputs_are_one_clear_error():
    scene = make_scene()
    views = _views(scene, [0])
    with pytest.raises(ValidationError, match="steps"):
        refine_scene(scene, views, -1)
    with pytest.raises(ValidationError, match="scene"):
        refine_scene(scene.background, views, 1)
    no_time = SimpleNamespace(cameras=Cameras(views.cameras.K, views.cameras.cam_to_world,
                                              views.cameras.width, views.cameras.height),
                              images=views.images)
    with pytest.raises(ValidationError, match="timestamps"):
        refine_scene(scene, no_time, 1)
    cfg = OptimConfig()
    with pytest.raises(ValidationError, match="densify"):
        refine_scene(scene, views, 1, config=cfg)
    with pytest.raises(ValidationError, match="images"):
        refine_scene(scene, SimpleNamespace(cameras=views.cameras, images=views.images[..., :2]), 1)
    assert refine_scene(scene, views, 0).num_gaussians == scene.num_gaussians
    cfg = dataclasses.replace(OptimConfig(), lr_means=math.nan)
    cfg.densify.enabled = False
    with pytest.raises(ValidationError, match="lr_means"):
        refine_scene(scene, views, 1, config=cfg)


def test_cli_refines_a_scene(tmp_path):
    pytest.importorskip("open3d")
    from splatnet.clip import Clip
    from splatnet.clip.synth.pipeline import generate

    clip = Clip.load(generate(tmp_path / "clip", 1001, cameras=2, frames=3, size=(64, 112)))
    assert clip.actors
    out = tmp_path / "r.scene"
    r = subprocess.run([sys.executable, "-m", "splatnet", "reconstruct", str(clip.path), "-o",
                        str(out), "--size", "64x112", "--frames", "0:2", "--refine", "3",
                        "--json", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["format"] == "scene" and "refine" in doc["timings"]
    scene = Scene.load(out)
    assert scene.metadata["refine"] == {"steps": 3, "views": 4,
                                        "seconds": scene.metadata["refine"]["seconds"]}
    tracks = {a.id: a for a in clip.actors}
    for a in scene.actors.values():
        want = tracks[a.id]
        np.testing.assert_array_equal(a.track.times, clip.timestamps.numpy()[want.frames])
        np.testing.assert_allclose(a.track.box_to_world, want.box_to_world, rtol=0, atol=1e-12)
