"""PLY round trip, the exact header, gsplat's exporter, malformed files; .splat decoded independently."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_gaussians

from splatnet import FormatError, Gaussians
from splatnet.sh import SH_C0


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip(tmp_path: Path, degree: int):
    g = random_gaussians(257, sh_degree=degree, seed=degree)
    path = tmp_path / "g.ply"
    assert g.save_ply(path, clamp_colors=False) == 0
    h = Gaussians.load_ply(path)
    assert h.num_gaussians == 257 and h.sh_degree == degree
    for name in ("means", "quats", "sh"):
        assert torch.equal(getattr(h, name), getattr(g, name)), name
    # Activations round-trip through logit/log in float32 storage.
    assert torch.allclose(h.opacities, g.opacities, rtol=1e-6, atol=1e-7)
    assert torch.allclose(h.scales, g.scales, rtol=1e-6, atol=0)
    # By default the DC colour 0.5 + C0·dc is clamped into [0, 1]; the other bands are exact.
    g.save_ply(path)
    h = Gaussians.load_ply(path)
    assert torch.equal(h.sh[:, 1:], g.sh[:, 1:])
    want = (0.5 + SH_C0 * g.sh[:, 0].double()).clamp(0, 1)
    assert torch.allclose(0.5 + SH_C0 * h.sh[:, 0].double(), want, rtol=0, atol=1e-7)


def test_exact_header_and_layout(tmp_path: Path):
    g = random_gaussians(3, sh_degree=1)
    path = tmp_path / "g.ply"
    g.save_ply(path)
    data = path.read_bytes()
    rest = [f"f_rest_{i}" for i in range(9)]
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", *rest, "opacity",
             "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    header = ("ply\nformat binary_little_endian 1.0\nelement vertex 3\n"
              + "".join(f"property float {n}\n" for n in names) + "end_header\n").encode()
    assert data[: len(header)] == header
    body = np.frombuffer(data[len(header):], dtype="<f4").reshape(3, len(names))
    col = {n: body[:, i] for i, n in enumerate(names)}
    assert (body[:, 3:6] == 0).all()  # zero normals
    # Pre-activation values, channel-major f_rest: f_rest_{c*(K-1)+(k-1)} = sh[k, c].
    sh = g.sh.numpy()
    for c in range(3):
        assert np.array_equal(col[f"f_dc_{c}"], sh[:, 0, c])
        for k in range(1, 4):
            assert np.array_equal(col[f"f_rest_{c * 3 + k - 1}"], sh[:, k, c])
    o = g.opacities.double().numpy()
    assert np.allclose(col["opacity"], np.log(o / (1 - o)), atol=1e-5)
    assert np.allclose(col["scale_1"], np.log(g.scales[:, 1].double().numpy()), atol=1e-6)
    assert np.array_equal(body[:, -4:], g.quats.numpy())


def test_gsplat_exporter_file_loads(tmp_path: Path):
    exporter = pytest.importorskip("gsplat.exporter")
    g = random_gaussians(50, sh_degree=2, seed=3)
    path = tmp_path / "gsplat.ply"
    exporter.export_splats(
        means=g.means, scales=torch.log(g.scales), quats=g.quats,
        opacities=torch.logit(g.opacities), sh0=g.sh[:, :1], shN=g.sh[:, 1:], format="ply",
        save_to=str(path))
    assert b"property float nx" not in path.read_bytes()[:2000]
    h = Gaussians.load_ply(path)
    assert h.sh_degree == 2
    assert torch.equal(h.means, g.means) and torch.equal(h.sh, g.sh)
    assert torch.allclose(h.opacities, g.opacities, atol=1e-6)
    assert torch.allclose(h.scales, g.scales, rtol=1e-6)


def test_save_drops_non_finite_and_is_atomic(tmp_path: Path, monkeypatch):
    g = random_gaussians(10, sh_degree=0)
    g.means[3, 1] = float("inf")
    g.sh[5, 0, 2] = float("nan")
    path = tmp_path / "g.ply"
    assert Gaussians.save_ply(Gaussians(**g.fields(), check=False), path) == 2
    assert Gaussians.load_ply(path).num_gaussians == 8
    # A crash during the write leaves the previous file untouched and no temp file behind.
    before = path.read_bytes()
    import splatnet.io.ply as ply

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ply, "ply_header", boom)
    with pytest.raises(RuntimeError):
        random_gaussians(4).save_ply(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.ply"]


def _header(props, n=1, fmt="binary_little_endian", ptype="float", extra=""):
    lines = ["ply", f"format {fmt} 1.0", extra, f"element vertex {n}"]
    lines += [f"property {ptype} {p}" for p in props] + ["end_header"]
    return ("\n".join(x for x in lines if x) + "\n").encode()


BASE = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
        "rot_0", "rot_1", "rot_2", "rot_3"]


@pytest.mark.parametrize(
    "content,message",
    [
        (_header(BASE, n=2) + struct.pack("<14f", *range(14)), "truncated"),
        (_header([p for p in BASE if p != "opacity"]) + b"\0" * 52, "missing vertex properties"),
        (_header(BASE[:6] + [f"f_rest_{i}" for i in range(5)] + BASE[6:]) + b"\0" * 76,
         "5 f_rest_* properties is not an SH degree 0-3 set"),
        (_header(BASE, ptype="double") + b"\0" * 112, "properties must be float32"),
        (_header(BASE + ["mystery"]) + b"\0" * 60, "unexpected vertex properties ['mystery']"),
        (b"solid cube\nfacet normal 0 0 0\n", "not a PLY file"),
        (_header(BASE)[:-11], "malformed"),
    ],
)
def test_malformed_files_rejected(tmp_path: Path, content: bytes, message: str):
    path = tmp_path / "bad.ply"
    path.write_bytes(content)
    with pytest.raises(FormatError) as err:
        Gaussians.load_ply(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_ascii_and_big_endian_variants_read(tmp_path: Path):
    values = [0.5, -1.0, 2.0, 0.1, 0.2, 0.3, 0.0, -1.0, -2.0, -3.0, 1.0, 0.0, 0.0, 0.0]
    (tmp_path / "a.ply").write_bytes(_header(BASE, fmt="ascii") + (" ".join(map(str, values))
                                                                   + "\n").encode())
    (tmp_path / "b.ply").write_bytes(_header(BASE, fmt="binary_big_endian")
                                     + struct.pack(">14f", *values))
    for name in ("a.ply", "b.ply"):
        g = Gaussians.load_ply(tmp_path / name)
        assert torch.allclose(g.means, torch.tensor([[0.5, -1.0, 2.0]]))
        assert torch.allclose(g.opacities, torch.tensor([0.5]))
        assert torch.allclose(g.scales, torch.exp(torch.tensor([[-1.0, -2.0, -3.0]])))


def test_missing_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        Gaussians.load_ply(tmp_path / "nope.ply")


def test_splat_bytes_decoded_independently(tmp_path: Path):
    g = random_gaussians(40, sh_degree=1, seed=7)
    path = tmp_path / "g.splat"
    assert g.save_splat(path) == 0
    raw = path.read_bytes()
    assert len(raw) == 40 * 32
    decoded = []
    for i in range(40):
        rec = raw[32 * i: 32 * (i + 1)]
        pos = struct.unpack("<3f", rec[0:12])
        scale = struct.unpack("<3f", rec[12:24])
        rgba = tuple(rec[24:28])
        rot = tuple(rec[28:32])
        decoded.append((pos, scale, rgba, rot))
    # Sorted by size × opacity, descending.
    key = (g.scales.prod(-1) * g.opacities).tolist()
    order = sorted(range(40), key=lambda i: -key[i])
    for (pos, scale, rgba, rot), i in zip(decoded, order):
        assert pos == tuple(g.means[i].tolist())
        assert scale == tuple(g.scales[i].tolist())
        rgb = [min(max(0.5 + SH_C0 * float(v), 0.0), 1.0) for v in g.sh[i, 0]]
        want = [round(c * 255) for c in rgb] + [round(float(g.opacities[i]) * 255)]
        assert all(abs(a - b) <= 1 for a, b in zip(rgba, want))
        q = g.quats[i] / g.quats[i].norm()
        assert all(abs(a - (float(b) * 128 + 128)) <= 1 for a, b in zip(rot, q))
