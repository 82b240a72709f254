"""Small hand-built scenes for the scene and CLI tests (no network): random Gaussians, a two-camera
rig looking forward, an ego driving along +x, and actors on straight or turning tracks."""

from __future__ import annotations

import math

import numpy as np
import torch

from splatnet import Gaussians
from splatnet.clip.actors import yaw_pose
from splatnet.models.sky import SkyModel
from splatnet.scene import Rig, RigCamera, Scene, SceneActor, Track

FRAME_TIMES = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
WIDTH, HEIGHT = 64, 48

# OpenCV camera axes in the ego frame (x forward, y left, z up): x_cam = -y, y_cam = -z, z_cam = +x.
_FORWARD = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def camera_mount(yaw: float, x: float = 1.5, z: float = 1.5) -> np.ndarray:
    """``[4, 4]`` cam_to_ego of a camera at ``(x, 0, z)`` turned by ``yaw`` from forward."""
    T = np.eye(4)
    T[:3, :3] = yaw_pose(0, 0, 0, yaw)[:3, :3] @ _FORWARD
    T[:3, 3] = [x, 0.0, z]
    return T


def make_rig() -> Rig:
    f = 0.5 * WIDTH / math.tan(math.radians(35))
    K = np.array([[f, 0, WIDTH / 2], [0, f, HEIGHT / 2], [0, 0, 1.0]])
    return Rig((RigCamera("front", WIDTH, HEIGHT, K, camera_mount(0.0)),
                RigCamera("front_left", WIDTH, HEIGHT, K, camera_mount(0.4))))


def gaussians(n: int, seed: int, *, sh_degree: int = 1, centre=(0.0, 0.0, 0.0),
              extent=(1.0, 1.0, 1.0), dynamic: bool = False) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    k = (sh_degree + 1) ** 2
    means = (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor(extent) + torch.tensor(centre)
    fields = dict(
        means=means, quats=torch.randn(n, 4, generator=g),
        scales=torch.rand(n, 3, generator=g) * 0.2 + 0.05,
        opacities=torch.rand(n, generator=g) * 0.8 + 0.1,
        sh=torch.randn(n, k, 3, generator=g) * 0.4)
    if dynamic:
        fields["velocities"] = torch.randn(n, 3, generator=g)
        fields["times"] = torch.rand(n, generator=g) * 0.4
    return Gaussians(**fields)


def car_track() -> Track:
    """Frames 0-4: from x = 8 to x = 12 in front of the ego, turning left by 0.1 rad a frame."""
    return Track(FRAME_TIMES.copy(), np.stack([yaw_pose(8.0 + i, 0.5, 0.8, 0.1 * i)
                                               for i in range(5)]),
                 np.array([True, True, True, False, False]))


def ped_track() -> Track:
    """Frames 1-3 only: crossing at x = 10 from y = 3 to y = 1."""
    return Track(FRAME_TIMES[1:4].copy(), np.stack([yaw_pose(10.0, 3.0 - i, 0.9, -math.pi / 2)
                                                    for i in range(3)]))


def make_sky(seed: int = 0):
    torch.manual_seed(seed)
    model = SkyModel(8, hidden_dim=16, latent_dim=4, num_frequencies=2)
    return model(torch.randn(1, 1, 8, 2, 2)).detach()


def make_scene(*, dynamic: bool = False, sky: bool = True, sh_degree: int = 2) -> Scene:
    car = SceneActor("car_1", "car", (4.0, 1.8, 1.5), car_track(),
                     gaussians(60, 2, sh_degree=sh_degree, extent=(4.0, 1.8, 1.5)))
    ped = SceneActor("ped-7", "pedestrian", (0.6, 0.6, 1.8), ped_track(),
                     gaussians(20, 3, sh_degree=1, extent=(0.6, 0.6, 1.8)))
    return Scene(background=gaussians(200, 1, sh_degree=sh_degree, centre=(15.0, 0.0, 0.5),
                                      extent=(20.0, 14.0, 4.0), dynamic=dynamic),
                 actors=[car, ped], rig=make_rig(), frame_times=FRAME_TIMES.copy(),
                 ego_to_world=np.stack([yaw_pose(float(i), 0.0, 0.0, 0.0) for i in range(5)]),
                 sky=make_sky() if sky else None,
                 metadata={"source": "hand-built", "model": None, "note": ["a", 1]})


def ego_layer(times=True):
    """An ego layer for camera ``front_left``: the bottom 10 rows, two context images (frames 0
    and 4) of flat colours."""
    from splatnet.scene.layers import EgoLayer

    mask = torch.zeros(HEIGHT, WIDTH, dtype=torch.bool)
    mask[-10:] = True
    images = torch.stack([torch.full((HEIGHT, WIDTH, 3), 0.2), torch.full((HEIGHT, WIDTH, 3), 0.7)])
    ts = torch.tensor([FRAME_TIMES[0], FRAME_TIMES[4]], dtype=torch.float64) if times else None
    return EgoLayer({"front_left": mask}, {"front_left": images}, {"front_left": ts}, True)
