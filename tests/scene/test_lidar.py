"""Simulated LiDAR against geometry known in closed form: a closed box room around the sensor
(range = half-size / largest direction component), a flat road (range = height / sin(depression)),
and a wall carried by an actor's track; plus the pattern, max range and the checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scene.builders import make_rig

from splatnet import Gaussians
from splatnet.clip.actors import yaw_pose
from splatnet.errors import ValidationError
from splatnet.scene import LidarSensor, Scene, SceneActor, Track


def _plane(axis: int, offset: float, half: float, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Centres and scales of flat, overlapping Gaussians tiling the square ``|u|, |v| <= half`` of
    the plane ``x[axis] = offset``: in-plane sigma 0.6 spacing, 2 mm thick."""
    g = np.linspace(-half, half, int(round(2 * half / spacing)) + 1)
    u, v = (a.ravel() for a in np.meshgrid(g, g, indexing="ij"))
    pts = np.zeros((len(u), 3))
    others = [k for k in range(3) if k != axis]
    pts[:, others[0]], pts[:, others[1]], pts[:, axis] = u, v, offset
    scales = np.full((len(u), 3), 0.6 * spacing)
    scales[:, axis] = 0.002
    return pts, scales


def _gaussians(pts: np.ndarray, scales: np.ndarray, rotation: np.ndarray | None = None) -> Gaussians:
    n = len(pts)
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(n, 1)
    if rotation is not None:  # a yaw about z: quaternion (cos a/2, 0, 0, sin a/2)
        a = math.atan2(rotation[1, 0], rotation[0, 0])
        quats = torch.tensor([[math.cos(a / 2), 0.0, 0.0, math.sin(a / 2)]]).repeat(n, 1)
    return Gaussians(torch.tensor(pts).float(), quats, torch.tensor(scales).float(),
                     torch.full((n,), 0.99), torch.zeros(n, 1, 3))


def _scene(background: Gaussians, actors=(), times=(0.0,), ego=None) -> Scene:
    ego = np.stack([np.eye(4)] * len(times)) if ego is None else ego
    return Scene(background=background, actors=list(actors), rig=make_rig(),
                 frame_times=np.asarray(times, dtype=np.float64), ego_to_world=ego)


def _ranges(points: np.ndarray, sensor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Range and unit direction of each point from the sensor (ego frame)."""
    d = points.astype(np.float64) - sensor
    r = np.linalg.norm(d, axis=1)
    return r, d / r[:, None]


def test_a_closed_room_around_the_sensor_is_measured_exactly():
    # A cube room of half-size a centred on the sensor, built in the ego frame and carried with
    # an ego that is turned and moved in the world. A beam leaves through the wall of its largest
    # direction component, at range a / max|d_i| -- and that wall faces the cube-map camera the
    # beam is sampled from, so every Gaussian there has camera z = a exactly: the rendered depth
    # is a to float32 rounding. Only near the room's edges do Gaussians of the next wall (camera z
    # from a - 3 sigma to a, spread by up to two pixels of the renderer's footprint dilation) mix
    # in: there the error is at most (3 sigma + 2 a / f) in z, times 1 / d_z <= sqrt(3) in range.
    a, spacing = 2.0, 0.1
    sensor = np.array([0.3, -0.2, 1.6])
    ego = yaw_pose(5.0, -3.0, 0.4, 0.6)
    parts = [_plane(axis, s * a, a, spacing) for axis in range(3) for s in (1.0, -1.0)]
    pts = np.concatenate([p for p, _ in parts]) + sensor
    world = pts @ ego[:3, :3].T + ego[:3, 3]
    scene = _scene(_gaussians(world, np.concatenate([s for _, s in parts]), ego[:3, :3]))
    lidar = LidarSensor.uniform(24, (-70.0, 70.0), 96, position=sensor, face_size=64)
    points = lidar.sweep(scene, ego, 0.0)
    assert points.dtype == np.float32 and points.shape == (lidar.num_rays, 3)  # every beam returns
    r, u = _ranges(points, sensor)
    analytic = a / np.abs(u).max(axis=1)
    sigma, f = 0.6 * spacing, 64 / 2
    err = np.abs(r - analytic)
    assert err.max() <= (3 * sigma + 2 * a / f) * math.sqrt(3)
    hit = u * analytic[:, None]
    interior = np.sort(np.abs(hit), axis=1)[:, 1] < a - 3 * sigma - 2 * a / f
    assert interior.sum() > 0.7 * len(points)
    assert err[interior].max() <= 1e-5 * a
    # The points are the pattern's beams: elevations and azimuths as asked.
    el = np.degrees(np.arcsin(np.clip(u[:, 2], -1, 1)))
    np.testing.assert_allclose(np.unique(np.round(el, 3)), np.round(np.linspace(-70, 70, 24), 3))
    np.testing.assert_allclose(lidar.directions(), u, atol=1e-6)


def test_the_road_is_measured_within_a_pixel_footprint():
    # A flat road (z = 0) under a sensor h = 1.8 m up: a beam at depression angle g meets it at
    # range h / sin g. The rendered depth of a pixel is the alpha-weighted mean camera z of the
    # Gaussians covering it, the nearer ones (in front) weighted more; on a plane seen at grazing
    # incidence that pulls the range towards the sensor by about the pixel's footprint along the
    # ground (its size plus the renderer's 0.3 px^2 dilation; ~1.3 footprints measured), plus the
    # Gaussians' own extent (sigma), and never pushes it away beyond rounding.
    h, spacing = 1.8, 0.1
    pts, scales = _plane(2, 0.0, 12.0, spacing)
    scene = _scene(_gaussians(pts, scales))
    mean_error = {}
    for size in (128, 256):
        lidar = LidarSensor.uniform(6, (-40.0, -10.0), 48, position=(0.0, 0.0, h), face_size=size,
                                    max_range=30.0)
        points = lidar.sweep(scene, np.eye(4), 0.0)
        assert points.shape == (lidar.num_rays, 3)
        r, u = _ranges(points, np.array([0.0, 0.0, h]))
        g = np.arcsin(-u[:, 2])
        analytic = h / np.sin(g)
        footprint = analytic * (2.0 / size) / np.tan(g)  # a pixel (2 / size rad) along the ground
        err = r - analytic
        assert err.max() <= 1e-4 * analytic.max()
        assert np.all(-err <= 1.5 * footprint + 2 * 0.6 * spacing)
        mean_error[size] = np.abs(err).mean()
        # Sampled in inverse depth (exact for a plane), the returns lie on the road, z = 0, to
        # the bias's vertical part (range error times sin g).
        assert np.all(np.abs(points[:, 2]) <= np.abs(err) * np.sin(g) + 1e-4)
    # The bias is the footprint's: twice the resolution, about half the error.
    assert mean_error[256] < 0.6 * mean_error[128]


def test_beams_without_a_surface_or_beyond_max_range_return_nothing():
    h = 1.8
    pts, scales = _plane(2, 0.0, 8.0, 0.2)
    scene = _scene(_gaussians(pts, scales))
    # Beams at -30, 0 and +30 degrees: the level and upward ones meet nothing (the road ends 8 m
    # away, 12.7 degrees below the horizon); the downward one meets it 3.6 m away.
    lidar = LidarSensor.uniform(3, (-30.0, 30.0), 32, max_range=5.0, face_size=64)
    points = lidar.sweep(scene, np.eye(4), 0.0)
    r, u = _ranges(points, np.array([0.0, 0.0, h]))
    assert points.shape == (32, 3)
    np.testing.assert_allclose(np.degrees(np.arcsin(u[:, 2])), -30.0, atol=1e-4)
    g = math.radians(30.0)
    bound = 1.5 * (h / math.sin(g)) * (2 / 64) / math.tan(g) + 2 * 0.6 * 0.2  # as on the road above
    assert np.all(np.abs(r - h / math.sin(g)) <= bound)
    near = LidarSensor.uniform(3, (-30.0, 30.0), 32, max_range=3.0, face_size=64)
    assert near.sweep(scene, np.eye(4), 0.0).shape == (0, 3)


def test_a_sweep_sees_an_actor_where_its_track_has_it_at_the_sweeps_time():
    # A 4 m x 4 m wall actor facing the ego (its box's -x face toward it), driving from x = 6 to
    # x = 10 over 0.4 s; the sensor at the ego origin, 1 m up; the forward beam's range is the
    # wall's x at that time.
    pts, scales = _plane(0, 0.0, 2.0, 0.1)
    wall = SceneActor("wall", "car", (0.5, 4.0, 4.0),
                      Track(np.array([0.0, 0.4]), np.stack([yaw_pose(6.0, 0.0, 1.0, 0.0),
                                                            yaw_pose(10.0, 0.0, 1.0, 0.0)])),
                      _gaussians(pts, scales))
    empty = _gaussians(np.array([[0.0, 0.0, -50.0]]), np.full((1, 3), 0.01))
    scene = _scene(empty, [wall], times=(0.0, 0.4), ego=np.stack([np.eye(4)] * 2))
    lidar = LidarSensor(np.radians([0.0]), np.radians([0.0]), yaw_pose(0.0, 0.0, 1.0, 0.0),
                        face_size=32)
    for t, x in ((0.0, 6.0), (0.1, 7.0), (0.25, 8.5), (0.4, 10.0)):
        p = lidar.sweep(scene, np.eye(4), t)
        np.testing.assert_allclose(p, [[x, 0.0, 1.0]], atol=1e-4)
    assert len(lidar.sweep(scene, np.eye(4), 0.5)) == 0  # the track has ended: nothing there


def test_the_pattern_and_its_checks():
    lidar = LidarSensor.uniform(32, (-25.0, 15.0), 1024)
    assert lidar.num_rays == 32 * 1024 and lidar.directions().shape == (32 * 1024, 3)
    np.testing.assert_allclose(np.linalg.norm(lidar.directions(), axis=1), 1.0)
    np.testing.assert_allclose(lidar.sensor_to_ego[:3, 3], [0.0, 0.0, 1.8])
    # Two pixels per finest step (360 / 1024 degrees) at a face's centre: 2 / size rad a pixel.
    assert lidar.face_size == math.ceil(4 / (2 * math.pi / 1024))
    d = lidar.directions()[0]  # lowest beam, straight ahead
    np.testing.assert_allclose(d, [math.cos(math.radians(25)), 0.0, -math.sin(math.radians(25))])
    with pytest.raises(ValidationError, match="lidar fov"):
        LidarSensor.uniform(32, (20.0, -10.0), 64)
    with pytest.raises(ValidationError, match="lidar beams"):
        LidarSensor.uniform(0)
    with pytest.raises(ValidationError, match="within ±90"):
        LidarSensor(np.array([2.0]), np.array([0.0]))
    with pytest.raises(ValidationError, match="max_range"):
        LidarSensor(np.array([0.0]), np.array([0.0]), max_range=-1.0)
    with pytest.raises(ValidationError, match="not rigid"):
        LidarSensor(np.array([0.0]), np.array([0.0]), np.diag([2.0, 1, 1, 1]))
    with pytest.raises(ValidationError, match="non-finite"):
        LidarSensor(np.array([float("nan")]), np.array([0.0]))
