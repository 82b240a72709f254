"""Shared fixtures: deterministic random Gaussians and cameras, the shared real data folder."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import splatnet
from splatnet.cameras import look_at_pose

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def random_gaussians(n: int, sh_degree: int = 3, seed: int = 0, batch: tuple[int, ...] = (),
                     dtype: torch.dtype = torch.float32) -> splatnet.Gaussians:
    g = torch.Generator().manual_seed(seed)
    k = (sh_degree + 1) ** 2
    return splatnet.Gaussians(
        torch.randn(*batch, n, 3, generator=g, dtype=dtype) * 2,
        torch.randn(*batch, n, 4, generator=g, dtype=dtype),
        torch.rand(*batch, n, 3, generator=g, dtype=dtype) * 0.5 + 0.01,
        torch.rand(*batch, n, generator=g, dtype=dtype) * 0.98 + 0.01,
        torch.randn(*batch, n, k, 3, generator=g, dtype=dtype) * 0.5,
    )


def simple_cameras(c: int = 2, width: int = 64, height: int = 48, radius: float = 8.0,
                   hfov_deg: float = 60.0) -> splatnet.Cameras:
    f = 0.5 * width / math.tan(math.radians(hfov_deg) / 2)
    K = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]]).expand(c, 3, 3)
    poses = []
    for i in range(c):
        a = 2 * math.pi * i / max(c, 1)
        poses.append(look_at_pose((radius * math.cos(a), radius * math.sin(a), 1.0), (0.0, 0.0, 0.0)).float())
    return splatnet.Cameras(K.clone(), torch.stack(poses), width, height)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared real data not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def one_thread():
    """Run the test on one torch thread: tests of many tiny kernels only add contention on 2
    shared cores with more."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def model_file(tmp_path_factory) -> Path:
    """An untrained SplatNet saved as a model file (seed 0): fast CLI tests that need a model
    but not a good one."""
    from splatnet.io.checkpoint import save_model
    from splatnet.models import SplatNet

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "net"
    save_model(path, SplatNet())
    return path.with_suffix(".safetensors")
