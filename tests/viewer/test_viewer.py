"""The viewer without a browser: splat arrays against NumPy, the drive loop through DrivingEnv's
bicycle model, and one-line errors of `splatnet view`."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("viser")

from splatnet.gaussians import Gaussians  # noqa: E402
from splatnet.viewer.server import splat_arrays  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "data" / "sample_clip"


def _quat_matrix(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def test_splat_arrays_match_numpy():
    rng = np.random.default_rng(0)
    n = 50
    q = rng.normal(size=(n, 4))
    s = rng.uniform(0.01, 2.0, size=(n, 3))
    sh = rng.normal(size=(n, 4, 3))
    g = Gaussians(torch.tensor(rng.normal(size=(n, 3))), torch.tensor(q), torch.tensor(s),
                  torch.tensor(rng.uniform(size=n)), torch.tensor(sh)).to(torch.float32)
    out = splat_arrays(g)
    cov = np.stack([_quat_matrix(q[i]) @ np.diag(s[i] ** 2) @ _quat_matrix(q[i]).T for i in range(n)])
    np.testing.assert_allclose(out["covariances"], cov, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["rgbs"], np.clip(sh[:, 0] * 0.28209479177387814 + 0.5, 0, 1), atol=1e-6)
    assert out["opacities"].shape == (n, 1) and out["centers"].shape == (n, 3)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_drive_keys_step_the_env(tmp_path):
    """Holding W from rest: the ego goes straight ahead at the vehicle's full acceleration."""
    import splatnet
    from splatnet.viewer import Viewer

    scene = splatnet.reconstruct_scene(str(SAMPLE), size=(64, 112))
    v = Viewer(scene, port=_port(), size=(32, 56))
    try:
        v.drive.value = True
        v._on_drive_toggle()
        start = v.env.ego_to_world.copy()
        end = time.monotonic() + 0.6
        while time.monotonic() < end:
            v._press("w")
            time.sleep(0.05)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not v._ended:
            v._press("w")
            time.sleep(0.05)
        assert v._ended  # the sample's 0.2 s span: two steps, then the end of the log
        pose = v.env.ego_to_world
        t = v.env.time - scene.time_span[0]
        fwd = start[:3, :3].T @ (pose[:3, 3] - start[:3, 3])
        assert fwd[0] == pytest.approx(0.5 * v.env.vehicle.max_accel * t * t, abs=1e-6)
        assert abs(fwd[1]) < 1e-9 and abs(fwd[2]) < 1e-9
        assert "step=2" in v.status.content
    finally:
        v.close()


@pytest.mark.parametrize("args, message", [
    (["missing.scene"], "SCENE_OR_SPLATS missing.scene: no such file"),
    ([str(SAMPLE / "clip.json"), "--port", "0"], "--port: expected a port number from 1 to 65535"),
])
def test_cli_errors_are_one_line(args, message):
    r = subprocess.run([sys.executable, "-m", "splatnet", "view", *args], capture_output=True, text=True,
                       cwd=REPO, timeout=60)
    assert r.returncode in (1, 2)
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_splat_file_with_clip(tmp_path):
    """A PLY has no rig: the clip gives the cameras, the ego path and the LiDAR; no drive mode."""
    from splatnet.clip import Clip
    from splatnet.viewer import Viewer

    g = Gaussians(torch.zeros(3, 3), torch.tensor([[1.0, 0, 0, 0]] * 3), torch.full((3, 3), 0.1),
                  torch.full((3,), 0.5), torch.zeros(3, 1, 3))
    ply = tmp_path / "g.ply"
    g.save_ply(ply)
    clip = Clip.load(SAMPLE)
    v = Viewer(ply, clip=SAMPLE, port=_port())
    try:
        assert v.env is None and v.gaussians.num_gaussians == 3
        v.set_time(float(v.frame_times[-1]))
        np.testing.assert_allclose(v._ego_pose, clip.ego_to_world[-1].double().numpy(), atol=1e-9)
    finally:
        v.close()


def test_lidar_sweep_sent_once_per_frame(tmp_path):
    """The drive loop calls set_time every step: the clip's LiDAR sweep (about 30k points here)
    goes to the browser again only when the frame nearest the time changes."""
    from splatnet.viewer import Viewer

    g = Gaussians(torch.zeros(3, 3), torch.tensor([[1.0, 0, 0, 0]] * 3), torch.full((3, 3), 0.1),
                  torch.full((3,), 0.5), torch.zeros(3, 1, 3))
    ply = tmp_path / "g.ply"
    g.save_ply(ply)
    v = Viewer(ply, clip=SAMPLE, port=_port())
    sent = []
    add = v.server.scene.add_point_cloud
    v.server.scene.add_point_cloud = lambda name, points, *a, **kw: (sent.append(len(points)),
                                                                    add(name, points, *a, **kw))[1]
    try:
        times = v.frame_times
        v.set_time(float(times[0]))  # the sweep of frame 0 is already shown
        v.set_time(float(times[0] + 0.2 * (times[1] - times[0])))  # still nearest frame 0
        assert sent == []
        v.set_time(float(times[-1]))
        assert sent == [len(v.clip.lidar(len(times) - 1))]
        v.set_time(float(times[0]))
        assert len(sent) == 2 and sent[1] == len(v.clip.lidar(0))
    finally:
        v.close()
