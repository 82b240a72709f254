"""SPZ: round trips within each field's stated bound (versions 3 and 4, SH degrees 0-3), a decode
of the raw bytes written here from the format's description (not with splatnet's reader), empty
and single-Gaussian files, and one clear error for each kind of malformed file."""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import torch
from conftest import random_gaussians

from splatnet import Gaussians
from splatnet.errors import FormatError, ValidationError
from splatnet.io.spz import QUANTISATION, RANGES, read_spz, write_spz

zstd = pytest.importorskip("zstandard")


def _in_range(g: Gaussians) -> Gaussians:
    """Random Gaussians with every field inside SPZ's representable range."""
    return Gaussians(g.means, g.quats, g.scales.clamp(1e-3, 50.0), g.opacities,
                     g.sh.clamp(-0.95, 0.95))


def _quat_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Largest component difference between unit quaternions, up to their sign (q ~ -q)."""
    a, b = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    return torch.minimum((a - b).abs().amax(-1), (a + b).abs().amax(-1)).max()


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_within_the_stated_bounds(tmp_path, version, degree):
    g = _in_range(random_gaussians(300, sh_degree=degree, seed=degree))
    path = tmp_path / "a.spz"
    assert write_spz(g, path, version=version, clamp_colors=False) == 0
    r = read_spz(path)
    q = QUANTISATION
    eps = 1e-6  # float32 arithmetic on top of the quantisation step
    assert (r["means"] - g.means).abs().max() <= q["position_m"] + eps
    assert (r["opacities"] - g.opacities).abs().max() <= q["opacity"] + eps
    assert (r["scales"].log() - g.scales.log()).abs().max() <= q["log_scale"] + eps
    assert (r["sh"][:, 0] - g.sh[:, 0]).abs().max() <= q["f_dc"] + eps
    assert r["sh"].shape == g.sh.shape
    if degree:
        assert (r["sh"][:, 1:4] - g.sh[:, 1:4]).abs().max() <= q["sh_degree1"] + eps
    if degree > 1:
        assert (r["sh"][:, 4:] - g.sh[:, 4:]).abs().max() <= q["sh_degree2_3"] + eps
    # The three stored components are within the bound; the derived largest one follows from them.
    assert _quat_error(g.quats, r["quats"]) <= 4 * q["rotation_component"]
    # The bounds are not loose: the errors come close to them.
    assert (r["opacities"] - g.opacities).abs().max() > 0.5 * q["opacity"]
    assert (r["sh"][:, 0] - g.sh[:, 0]).abs().max() > 0.5 * q["f_dc"]


def test_bytes_follow_the_format_description(tmp_path):
    """Decode the first Gaussian of a version-3 and a version-4 file by hand, from the README's
    layout (header, then positions, alphas, colours, scales, rotations, SH arrays)."""
    g = _in_range(random_gaussians(5, sh_degree=1, seed=7))
    for version in (3, 4):
        path = tmp_path / f"v{version}.spz"
        write_spz(g, path, version=version, clamp_colors=False)
        data = path.read_bytes()
        if version == 3:
            raw = gzip.decompress(data)
            magic, ver, n, deg, bits, flags, _ = struct.unpack_from("<IIIBBBB", raw)
            body, arrays = raw[16:], None
        else:
            magic, ver, n, deg, bits, flags, streams, toc = struct.unpack_from("<IIIBBBBI", data)
            assert data[20:32] == bytes(12) and toc == 32 and streams == 6
            sizes = [struct.unpack_from("<QQ", data, 32 + 16 * i) for i in range(streams)]
            at, arrays = 32 + 16 * streams, []
            for c, u in sizes:
                arrays.append(zstd.ZstdDecompressor().decompress(data[at:at + c], max_output_size=u))
                at += c
            body = b"".join(arrays)
        assert (magic, ver, n, deg, flags) == (0x5053474E, version, 5, 1, 0) and data[:4] != b""
        pos = body[:45]
        x = int.from_bytes(pos[0:3], "little", signed=True) / 2 ** bits
        assert x == pytest.approx(float(g.means[0, 0]), abs=2 ** -(bits + 1) + 1e-7)
        alpha = body[45]
        assert alpha == round(255 * float(g.opacities[0]))
        colour = body[50:53]
        assert (colour[0] / 255 - 0.5) / 0.15 == pytest.approx(float(g.sh[0, 0, 0]), abs=0.0131)
        scale = body[65:68]
        assert scale[2] / 16 - 10 == pytest.approx(math.log(float(g.scales[0, 2])), abs=1 / 32)
        rot = int.from_bytes(body[80:84], "little")
        q = (g.quats[0] / g.quats[0].norm()).tolist()
        xyzw = [q[1], q[2], q[3], q[0]]
        largest = max(range(4), key=lambda i: abs(xyzw[i]))
        assert rot >> 30 == largest
        last = max(i for i in range(4) if i != largest)  # stored in the lowest 10 bits
        sign = -1 if (rot >> 9) & 1 else 1
        s = 1 if xyzw[largest] > 0 else -1
        assert sign * math.sqrt(0.5) * (rot & 511) / 511 == pytest.approx(s * xyzw[last], abs=7e-4)
        sh = body[100:109]  # Gaussian 0: coefficients 1..3, r g b each
        assert (sh[3 + 1] - 128) / 128 == pytest.approx(float(g.sh[0, 2, 1]), abs=4.5 / 128)


def test_single_gaussian_and_empty(tmp_path):
    g = _in_range(random_gaussians(1, sh_degree=3))
    write_spz(g, tmp_path / "one.spz")
    assert read_spz(tmp_path / "one.spz")["means"].shape == (1, 3)
    empty = random_gaussians(0, sh_degree=2)
    with pytest.raises(ValidationError, match="cannot be empty"):
        write_spz(empty, tmp_path / "empty.spz")
    assert not (tmp_path / "empty.spz").exists()
    # An empty version-3 file (older writers made them) reads as no Gaussians.
    (tmp_path / "old.spz").write_bytes(gzip.compress(struct.pack("<IIIBBBB", 0x5053474E, 3, 0, 2,
                                                                 12, 0, 0)))
    r = read_spz(tmp_path / "old.spz")
    assert r["means"].shape == (0, 3) and r["sh"].shape == (0, 9, 3)


def test_values_outside_the_range_are_clamped_with_a_warning(tmp_path, caplog):
    g = random_gaussians(4, sh_degree=1)
    g = Gaussians(g.means, g.quats, torch.full((4, 3), 1e3), g.opacities, g.sh * 10)
    write_spz(g, tmp_path / "c.spz", clamp_colors=False)
    assert "clamped" in caplog.text
    r = read_spz(tmp_path / "c.spz")
    assert r["scales"].log().max() == pytest.approx(RANGES["log_scale"][1], abs=1e-5)
    assert r["sh"][:, 1:].max() <= RANGES["sh"][1] + 1e-6


def test_large_coordinates_use_fewer_fractional_bits(tmp_path):
    g = _in_range(random_gaussians(3, sh_degree=0))
    far = Gaussians(g.means + torch.tensor([5000.0, 0.0, 0.0]), g.quats, g.scales, g.opacities, g.sh)
    write_spz(far, tmp_path / "far.spz")
    bits = gzip.decompress(_legacy(far, tmp_path))[13]
    assert bits == 10  # 5000 * 2**11 overflows 2**23
    assert (read_spz(tmp_path / "far.spz")["means"] - far.means).abs().max() <= 2.0 ** -11 + 1e-3


def _legacy(g, tmp_path) -> bytes:
    write_spz(g, tmp_path / "legacy.spz", version=3)
    return (tmp_path / "legacy.spz").read_bytes()


def _v4(tmp_path, n=10, degree=1) -> bytes:
    write_spz(_in_range(random_gaussians(n, sh_degree=degree)), tmp_path / "ok.spz")
    return (tmp_path / "ok.spz").read_bytes()


def _patch(data: bytes, offset: int, fmt: str, value) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


def _malformed(tmp_path):
    v4, v3 = _v4(tmp_path), _legacy(_in_range(random_gaussians(10, sh_degree=1)), tmp_path)
    raw3 = gzip.decompress(v3)
    c0 = struct.unpack_from("<Q", v4, 32)[0]
    return {
        "truncated v4": (v4[:-5], "truncated SPZ"),
        "truncated header": (v4[:20], "truncated SPZ"),
        "truncated gzip": (v3[:len(v3) // 2], "truncated SPZ|damaged"),
        "short gzip body": (gzip.compress(raw3[:-7]), "truncated SPZ"),
        "long gzip body": (gzip.compress(raw3 + b"\0" * 9), "longer than the header says"),
        "wrong magic": (b"XYZW" + v4[4:], "not an SPZ file"),
        "gzip without magic": (gzip.compress(b"\0" * 40), "without the NGSP magic"),
        "wrong version": (_patch(v4, 4, "<I", 9), "version 9"),
        "version 1": (gzip.compress(_patch(raw3, 4, "<I", 1)), "version 1"),
        "version 3 plaintext": (_patch(v4, 4, "<I", 3), "plaintext NGSP header"),
        "sh degree 4": (_patch(v4, 12, "<B", 4), "SH degree 4"),
        "wrong stream count": (_patch(v4, 15, "<B", 5), "declares 5 streams"),
        "inconsistent count": (_patch(v4, 8, "<I", 11), "need"),
        "lying point count": (_patch(v4, 8, "<I", 4_000_000_000), "more than a"),
        "lying compressed size": (_patch(v4, 32, "<Q", c0 + 1000), "truncated SPZ"),
        "lying uncompressed size": (_patch(v4, 40, "<Q", 91), "listed as 91 bytes"),
        "toc outside": (_patch(v4, 16, "<I", 10 ** 6), "table of contents at byte"),
        "reserved bytes": (_patch(v4, 24, "<I", 7), "reserved bytes"),
        "garbage stream": (v4[:128] + bytes(len(v4) - 128), "zstd"),
        "trailing gzip data": (v3 + b"junk", "after the SPZ gzip stream"),
        "not spz at all": (b"hello world, not a splat", "not an SPZ file"),
    }


def test_malformed_files_are_one_clear_error(tmp_path):
    for name, (data, match) in _malformed(tmp_path).items():
        path = tmp_path / f"{name.replace(' ', '_')}.spz"
        path.write_bytes(data)
        with pytest.raises(FormatError, match=match) as e:
            read_spz(path)
        msg = str(e.value)
        assert str(path) in msg and "\n" not in msg, (name, msg)


def test_missing_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_spz(tmp_path / "nope.spz")
    with pytest.raises(FormatError, match="is a directory"):
        read_spz(tmp_path)


def test_extension_records_are_skipped(tmp_path, caplog):
    data = _v4(tmp_path, n=4, degree=0)
    record = struct.pack("<II", 0xADBE0002, 12) + struct.pack("<fff", 0.0, 1.0, 2.0)
    header = _patch(_patch(data[:32], 14, "<B", 0x2), 16, "<I", 32 + len(record))
    (tmp_path / "ext.spz").write_bytes(header + record + data[32:])
    ref = read_spz(tmp_path / "ok.spz")
    got = read_spz(tmp_path / "ext.spz")
    assert torch.equal(ref["means"], got["means"]) and "0xadbe0002" in caplog.text
    bad = header[:16] + struct.pack("<I", 32 + 5) + header[20:] + record[:5] + data[32:]
    (tmp_path / "badext.spz").write_bytes(bad)
    with pytest.raises(FormatError, match="extension"):
        read_spz(tmp_path / "badext.spz")


def test_round_trip_through_gaussians_save_and_load(tmp_path):
    g = _in_range(random_gaussians(50, sh_degree=2))
    g.save(tmp_path / "g.spz", clamp_colors=False)
    back = Gaussians.load(tmp_path / "g.spz")
    assert back.num_gaussians == 50 and back.sh_degree == 2
    assert np.allclose(back.means.numpy(), g.means.numpy(), atol=2e-4)
