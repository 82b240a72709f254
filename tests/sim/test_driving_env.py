"""DrivingEnv: Gymnasium's checker, collisions where the geometry puts them, the log replayed in
pose mode, determinism, observations, rewards and the errors of bad input."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from scene.builders import gaussians, make_scene
from sim.scenes import PERIOD, SPEED, parked, straight_scene

import splatnet
from splatnet.errors import ValidationError
from splatnet.scene import Rig, Scene
from splatnet.scene.lidar import LidarSensor
from splatnet.sim import ENV_ID, DrivingEnv, Reward, Vehicle

REPO = Path(__file__).resolve().parents[2]
SMALL = {"cameras": ["front"], "size": (24, 32)}


def _uint8(rgb: torch.Tensor) -> np.ndarray:
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def test_check_env_passes(tmp_path):
    # Through gymnasium.make (which copies its arguments: the scene goes as a file), so that the
    # checker also tries every render mode and close().
    path = make_scene().save(tmp_path / "street.scene")
    env = gymnasium.make(ENV_ID, scene=str(path), render_mode="rgb_array", depth=True,
                         lidar=LidarSensor.uniform(beams=4, azimuths=32, face_size=16))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)  # raises on any failure
    messages = [str(w.message) for w in caught]
    # Gymnasium only recommends a normalised action space; ours is in physical units
    # (gymnasium.wrappers.RescaleAction gives [-1, 1]).
    assert all("symmetric and normalized" in m for m in messages), messages
    frame = env.unwrapped.render()
    assert frame.shape == (48, 2 * 64, 3) and frame.dtype == np.uint8


def _drive_straight(scene, **kw):
    env = DrivingEnv(scene, **SMALL, **kw)
    env.reset(seed=0, options={"speed": SPEED})
    infos = []
    for k in range(1, 100):
        _, reward, terminated, truncated, info = env.step(np.array([0.0, 0.0]))
        infos.append(info)
        if terminated or truncated:
            return k, terminated, infos
    raise AssertionError("the episode never ended")


def test_driving_into_a_parked_car_collides_at_the_predicted_step():
    # The ego's box (4.6 m long, centred on its origin) has its front at x = k + 2.3 after step
    # k (10 m/s, 0.1 s steps). The parked car's rear is at 20.35 - 2 = 18.35 m and it overlaps
    # the ego's lane (|y| 1.5 < 0.95 + 0.9): first overlap at k + 2.3 > 18.35, i.e. k = 17.
    k, terminated, infos = _drive_straight(straight_scene([parked("car_9", 20.35, 1.5)]))
    info = infos[-1]
    assert (k, terminated) == (17, True)
    assert info["collision"] and info["collided_with"] == ["car_9"]
    assert info["reward_terms"]["collision"] == -Reward().collision
    # 0.2 m further to the side it misses (1.5 + 0.2 + ... > 1.85) and the log runs out.
    k, terminated, infos = _drive_straight(straight_scene([parked("car_9", 20.35, 2.0)]))
    assert (k, terminated) == (30, False) and not any(i["collision"] for i in infos)
    # Alongside it (step 20: the ego's centre at x = 20) the gap is 2.0 - 0.9 m to its side.
    assert infos[19]["nearest_actor"]["id"] == "car_9"
    assert infos[19]["nearest_actor"]["distance"] == pytest.approx(2.0 - 0.9, abs=1e-9)


def test_collision_with_a_turned_car_from_its_footprint():
    x, y, yaw, (length, width) = 21.0, 1.6, 0.6, (4.0, 1.8)
    # Independent prediction: the nearest point of the car's footprint inside the ego's lane
    # (|y| < 0.95), from points along its outline.
    u = np.linspace(-0.5, 0.5, 20001)
    outline = np.concatenate([np.stack([u * length, np.full_like(u, s * width / 2)], 1) for s in (-1, 1)] +
                             [np.stack([np.full_like(u, s * length / 2), u * width], 1) for s in (-1, 1)])
    c, s = math.cos(yaw), math.sin(yaw)
    world = outline @ np.array([[c, s], [-s, c]]) + [x, y]
    contact = world[np.abs(world[:, 1]) < 0.95, 0].min()
    k_pred = math.floor(contact - 2.3) + 1
    assert abs((contact - 2.3) - round(contact - 2.3)) > 0.05  # not at a step boundary
    k, terminated, infos = _drive_straight(straight_scene([parked("van", x, y, yaw, (4.0, 1.8, 1.5))]))
    assert (k, terminated, infos[-1]["collided_with"]) == (k_pred, True, ["van"])


def test_a_fast_ego_does_not_pass_through_a_thin_actor_between_steps():
    # 40 m/s in 0.2 s steps: 8 m a step, more than the ego's length. The ego's box spans
    # [x - 2.3, x + 2.3]: [5.7, 10.3] after step 1 and [13.7, 18.3] after step 2, so a post at
    # x = 11.85..12.15 lies between the two, inside neither; the ego drove through it in step 2.
    post = parked("post", 12.0, 0.0, size=(0.3, 0.3, 1.5))
    env = DrivingEnv(straight_scene([post]), dt=0.2, **SMALL)
    env.reset(options={"speed": 40.0})
    _, _, terminated, _, info = env.step([0.0, 0.0])
    assert not terminated
    _, _, terminated, _, info = env.step([0.0, 0.0])
    assert terminated and info["collided_with"] == ["post"]
    np.testing.assert_allclose(env.ego_to_world[:3, 3], [16.0, 0.0, 0.0], atol=1e-9)


def test_pose_mode_replays_the_log_cameras_and_images():
    scene = make_scene()
    env = DrivingEnv(scene, action_mode="pose")
    obs, info = env.reset()
    for k in range(scene.num_frames):
        if k:
            obs, reward, terminated, truncated, info = env.step(scene.ego_to_world[k])
            assert truncated == (k == scene.num_frames - 1) and not terminated
            # The log drives 1 m per 0.1 s along x: 10 m/s, straight.
            assert obs["ego"][0] == pytest.approx(10.0, rel=1e-6)
            assert obs["ego"][3] == pytest.approx(0.0, abs=1e-9)
            assert info["distance_to_path"] == pytest.approx(0.0, abs=1e-12)
            assert info["progress"] == pytest.approx(float(k), abs=1e-12)
        assert info["t"] == pytest.approx(scene.frame_times[k], abs=1e-12)
        want = np.stack([scene.ego_to_world[k] @ c.cam_to_ego for c in scene.rig.cameras])
        np.testing.assert_allclose(env.cameras.cam_to_world.double().numpy(), want, atol=1e-6)
        ref = scene.frame_cameras(k)
        assert torch.equal(env.cameras.cam_to_world, ref.cam_to_world)
        assert torch.equal(env.cameras.K, ref.K)
        with torch.no_grad():
            exact = _uint8(scene.render(ref).rgb)
        # The sky is left out where under 1/512 of it would show: at most one step per pixel.
        assert np.abs(obs["rgb"].astype(int) - exact.astype(int)).max() <= 1
        assert np.mean(obs["rgb"] == exact) > 0.99
        np.testing.assert_array_equal(obs["ego_to_world"], scene.ego_to_world[k])


def test_rig_cameras_see_the_scene_through_their_colour_matrices():
    """A scene's colour matrix for a rig camera (its recorded exposure) is in that camera's
    observations: ``M · rgb + b`` of the plain render, worked out here; the other camera's are
    the plain render."""
    plain = make_scene()
    m = np.array([[1.2, 0, 0, 0.05], [0, 0.8, 0, 0.0], [0.1, 0, 1.0, -0.1]])
    scene = plain.replace(colour={"front_left": m})
    obs, _ = DrivingEnv(scene, action_mode="pose").reset()
    with torch.no_grad():
        ref = plain.render(plain.frame_cameras(0)).rgb.double().numpy()
    want = _uint8(torch.from_numpy(np.stack([ref[0], ref[1] @ m[:, :3].T + m[:, 3]])))
    # The sky is left out where under 1/512 of it shows: at most one step per pixel.
    assert np.abs(obs["rgb"].astype(int) - want.astype(int)).max() <= 1
    assert np.mean(obs["rgb"] == want) > 0.99
    assert np.abs(obs["rgb"][1].astype(int) - _uint8(torch.from_numpy(ref[1])).astype(int)).max() > 10


def test_pose_mode_reproduces_the_bundled_clips_own_cameras():
    # The bundled clip's rig and ego log under random Gaussians (no network): the environment's
    # cameras, scaled to 64x112, are the clip loader's own views of each frame.
    clip = splatnet.Clip.load(REPO / "examples" / "data" / "sample_clip")
    scene = Scene(background=gaussians(100, 1, sh_degree=1, extent=(30.0, 30.0, 3.0)),
                  rig=Rig.from_clip(clip), frame_times=clip.timestamps, ego_to_world=clip.ego_to_world)
    env = DrivingEnv(scene, action_mode="pose", size=(64, 112))
    env.reset()
    for k in range(clip.num_frames):
        if k:
            env.step(clip.ego_to_world[k])
        views = clip.views(frames=[k], size=(64, 112))
        assert env.cameras.names == views.cameras.names
        torch.testing.assert_close(env.cameras.cam_to_world, views.cameras.cam_to_world, atol=1e-5, rtol=0)
        torch.testing.assert_close(env.cameras.K, views.cameras.K, atol=1e-4, rtol=0)
        torch.testing.assert_close(env.cameras.timestamps, views.cameras.timestamps, atol=1e-9, rtol=0)


def test_bicycle_mode_follows_a_straight_log_exactly():
    env = DrivingEnv(straight_scene(), **SMALL)
    obs, info = env.reset()
    assert obs["ego"][0] == pytest.approx(SPEED)  # the log's speed at the start
    total = 0.0
    for k in range(1, 31):
        obs, reward, terminated, truncated, info = env.step([0.0, 0.0])
        total += reward
        np.testing.assert_allclose(obs["ego_to_world"], env.log.pose_at(k * PERIOD), atol=1e-9)
    assert truncated and total == pytest.approx(30.0 * SPEED * PERIOD)  # 1 per metre, on the path


def test_rear_axle_reference_turns_about_the_rear_axle():
    v = Vehicle(rear_axle_x=-1.4, wheelbase=2.8)
    env = DrivingEnv(straight_scene(), vehicle=v, **SMALL)
    env.reset(options={"speed": 5.0})
    steer = 0.3
    obs, *_ = env.step([0.0, steer])
    R = v.wheelbase / math.tan(steer)
    phi = 5.0 * PERIOD / R
    # Rear axle from (-1.4, 0) along the circle about (-1.4, R); the ego origin 1.4 m ahead of it.
    rear = np.array([-1.4 + R * math.sin(phi), R * (1 - math.cos(phi))])
    origin = rear + 1.4 * np.array([math.cos(phi), math.sin(phi)])
    np.testing.assert_allclose(obs["ego_to_world"][:2, 3], origin, atol=1e-9)
    assert obs["ego"][2] == pytest.approx(steer) and obs["ego"][3] == pytest.approx(5.0 / R, rel=1e-6)


def test_off_path_penalty():
    env = DrivingEnv(straight_scene(), **SMALL)
    start = np.eye(4)
    start[1, 3] = 3.0  # 3 m left of the log
    env.reset(options={"ego_to_world": start})
    _, reward, *_, info = env.step([0.0, 0.0])
    assert info["distance_to_path"] == pytest.approx(3.0)
    assert info["reward_terms"]["off_path"] == pytest.approx(-0.2 * (3.0 - 1.0))
    assert reward == pytest.approx(1.0 - 0.4)


def test_same_seed_same_episode():
    scene = make_scene()

    def episode(seed):
        env = DrivingEnv(scene, depth=True, start_noise=(0.5, 0.05, 1.0))
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for k in range(4):
            obs, reward, *_ = env.step([0.5 * k, 0.1])
            out.append(obs)
        return out

    a, b, c = episode(3), episode(3), episode(4)
    for x, y in zip(a, b):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    assert not np.array_equal(a[0]["ego_to_world"], c[0]["ego_to_world"])
    assert not np.array_equal(a[-1]["rgb"], c[-1]["rgb"])


def test_depth_and_lidar_observations():
    scene = make_scene()
    lidar = LidarSensor.uniform(beams=8, azimuths=64, face_size=32)
    env = DrivingEnv(scene, depth=True, lidar=lidar)
    obs, _ = env.reset()
    assert obs["depth"].shape == (2, 48, 64) and obs["depth"].dtype == np.float32
    with torch.no_grad():
        ref = scene.render(scene.frame_cameras(0))
    np.testing.assert_array_equal(obs["depth"], ref.depth[..., 0].numpy())
    np.testing.assert_array_equal(obs["lidar"], lidar.sweep(scene, scene.ego_to_world[0], 0.0))
    assert len(obs["lidar"]) > 0 and env.observation_space.contains(obs)


def test_actions_outside_the_limits_are_clipped_and_reported():
    v = Vehicle()
    env = DrivingEnv(straight_scene(), **SMALL)
    env.reset()
    _, _, _, _, info = env.step([100.0, -5.0])
    assert info["action"] == [v.max_accel, -v.max_steer]


# ------------------------------------------------------------------------------------ bad input
def test_non_finite_action_is_an_error_and_changes_nothing():
    env = DrivingEnv(straight_scene(), **SMALL)
    env.reset()
    env.step([0.0, 0.0])
    pose, t = env.ego_to_world, env.time
    for bad in ([math.nan, 0.0], [0.0, math.inf]):
        with pytest.raises(ValidationError, match="action: non-finite"):
            env.step(bad)
    with pytest.raises(ValidationError, match=r"shape \(2,\)"):
        env.step([1.0, 0.0, 0.0])
    np.testing.assert_array_equal(env.ego_to_world, pose)
    assert env.time == t
    env.step([0.0, 0.0])  # the episode goes on
    assert env.time == pytest.approx(t + PERIOD)


def test_pose_mode_rejects_a_bad_pose():
    env = DrivingEnv(make_scene(), action_mode="pose")
    env.reset()
    bad = np.eye(4)
    bad[0, 0] = 2.0
    with pytest.raises(ValidationError, match="not rigid"):
        env.step(bad)
    bad = np.eye(4)
    bad[0, 3] = math.nan
    with pytest.raises(ValidationError, match="non-finite"):
        env.step(bad)


def test_step_after_the_end_or_before_reset_is_an_error():
    env = DrivingEnv(make_scene(), **SMALL)
    with pytest.raises(ValidationError, match=r"step\(\) before reset\(\)"):
        env.step([0.0, 0.0])
    env.reset()
    for _ in range(4):
        *_, truncated, _ = env.step([0.0, 0.0])
    assert truncated
    with pytest.raises(ValidationError, match="after the episode ended .truncated"):
        env.step([0.0, 0.0])
    env2 = DrivingEnv(straight_scene([parked("car_9", 8.0, 0.0)]), **SMALL)
    env2.reset()
    ends = [env2.step([0.0, 0.0])[2] for _ in range(4)]  # front at k + 2.3 m, the car's rear at 6 m
    assert ends == [False, False, False, True]
    with pytest.raises(ValidationError, match="after the episode ended .terminated: collision with 'car_9'"):
        env2.step([0.0, 0.0])
    env2.reset()  # a new episode
    env2.step([-8.0, 0.0])


def test_bad_construction_and_options_are_one_line_errors():
    scene = make_scene()
    with pytest.raises(ValidationError, match="rig") as e:
        DrivingEnv(scene.background)
    assert "\n" not in str(e.value)
    with pytest.raises(ValidationError, match="no camera 'rear'"):
        DrivingEnv(scene, cameras=["front", "rear"])
    with pytest.raises(ValidationError, match="action_mode"):
        DrivingEnv(scene, action_mode="joystick")
    with pytest.raises(ValidationError, match="dt"):
        DrivingEnv(scene, dt=-0.1)
    with pytest.raises(ValidationError, match="start_noise"):
        DrivingEnv(scene, start_noise=(0.1, -1.0, 0.0))
    with pytest.raises(ValidationError, match="size"):
        DrivingEnv(scene, size=(0, 64))
    one = scene.replace(frame_times=scene.frame_times[:1], ego_to_world=scene.ego_to_world[:1])
    with pytest.raises(ValidationError, match="two or more"):
        DrivingEnv(one)
    env = DrivingEnv(scene, **SMALL)
    with pytest.raises(ValidationError, match="unknown option 'lane'"):
        env.reset(options={"lane": 2})
    with pytest.raises(ValidationError, match="leaves no step"):
        env.reset(options={"frame": 4})
    with pytest.raises(ValidationError, match="outside the scene's time span"):
        env.reset(options={"t": 9.0})
    with pytest.raises(ValidationError, match="speed"):
        env.reset(options={"speed": 100.0})


def test_custom_step_period():
    env = DrivingEnv(straight_scene(), dt=0.25, **SMALL)
    env.reset()
    steps = 0
    while True:
        *_, truncated, info = env.step([0.0, 0.0])
        steps += 1
        if truncated:
            break
    # 3 s span in 0.25 s steps: 12 steps, the last at t = 3.0.
    assert steps == 12 and info["t"] == pytest.approx(3.0)
    assert env.metadata["render_fps"] == pytest.approx(4.0)
