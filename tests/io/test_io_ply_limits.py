"""Hostile PLY files: absurd vertex counts, bodies longer than the header, giant headers, values
whose activation overflows. Each is one FormatError naming the file, never a numpy warning."""

from __future__ import annotations

import math
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from splatnet import FormatError, Gaussians

BASE = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
        "rot_0", "rot_1", "rot_2", "rot_3"]
REC = struct.Struct("<14f")


def _header(n, fmt: str = "binary_little_endian", comment: bytes = b"") -> bytes:
    lines = [b"ply", f"format {fmt} 1.0".encode()]
    if comment:
        lines.append(b"comment " + comment)
    lines.append(f"element vertex {n}".encode())
    lines += [f"property float {p}".encode() for p in BASE]
    lines.append(b"end_header")
    return b"\n".join(lines) + b"\n"


def _record(opacity=0.0, log_scale=(-1.0, -1.0, -1.0), x=0.0) -> bytes:
    return REC.pack(x, 0.0, 0.0, 0.1, 0.2, 0.3, opacity, *log_scale, 1.0, 0.0, 0.0, 0.0)


def _ascii_line(x=0.0) -> bytes:
    return f"{x} 0 0 0.1 0.2 0.3 0 -1 -1 -1 1 0 0 0\n".encode()


def _load_strict(path: Path) -> Gaussians:
    """Load with every warning turned into an error (the one-line rule: loading prints nothing)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return Gaussians.load_ply(path)


@pytest.mark.parametrize("fmt", ["binary_little_endian", "binary_big_endian", "ascii"])
def test_absurd_vertex_count_is_one_format_error(tmp_path: Path, fmt: str):
    path = tmp_path / "huge.ply"
    body = _ascii_line() if fmt == "ascii" else _record()
    if fmt == "binary_big_endian":
        body = struct.pack(">14f", *REC.unpack(body))
    path.write_bytes(_header(10**20, fmt) + body)
    with pytest.raises(FormatError) as err:
        _load_strict(path)
    msg = str(err.value)
    assert str(path) in msg and str(10**20) in msg and "\n" not in msg


def test_negative_vertex_count_rejected(tmp_path: Path):
    path = tmp_path / "neg.ply"
    path.write_bytes(_header(-3) + _record())
    with pytest.raises(FormatError, match="vertex count") as err:
        _load_strict(path)
    assert str(path) in str(err.value)


def test_binary_body_longer_than_header(tmp_path: Path):
    # The report's case: a header claiming 10 vertices over a body of 127,338.
    path = tmp_path / "long.ply"
    n_body = 127_338
    path.write_bytes(_header(10) + _record() * n_body)
    with pytest.raises(FormatError) as err:
        _load_strict(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "10 vertices" in msg and f"{10 * 56} bytes" in msg
    assert f"{n_body * 56} bytes" in msg and f"{n_body} vertices" in msg


def test_binary_body_one_stray_byte_rejected(tmp_path: Path):
    path = tmp_path / "stray.ply"
    path.write_bytes(_header(2) + _record() * 2 + b"\n")
    with pytest.raises(FormatError, match="longer than the header") as err:
        _load_strict(path)
    assert str(path) in str(err.value) and "1 extra byte" in str(err.value)


def test_binary_exact_length_still_loads(tmp_path: Path):
    path = tmp_path / "ok.ply"
    path.write_bytes(_header(3) + b"".join(_record(x=float(i)) for i in range(3)))
    g = _load_strict(path)
    assert g.means[:, 0].tolist() == [0.0, 1.0, 2.0]


def test_ascii_extra_lines_rejected_blank_lines_allowed(tmp_path: Path):
    path = tmp_path / "a.ply"
    path.write_bytes(_header(1, "ascii") + _ascii_line(1.0) + _ascii_line(2.0) + _ascii_line(3.0))
    with pytest.raises(FormatError) as err:
        _load_strict(path)
    msg = str(err.value)
    assert str(path) in msg and "1 vertex" in msg and "3 non-empty lines" in msg
    # Trailing blank lines (some writers end with an empty line) are not data.
    path.write_bytes(_header(1, "ascii") + _ascii_line(1.0) + b"\n  \n\r\n")
    assert _load_strict(path).means[0, 0].item() == 1.0


def test_ascii_too_few_lines_is_truncated(tmp_path: Path):
    path = tmp_path / "short.ply"
    path.write_bytes(_header(4, "ascii") + _ascii_line() * 2)
    with pytest.raises(FormatError, match="truncated") as err:
        _load_strict(path)
    assert str(path) in str(err.value)


def test_giant_header_comment_refused_quickly(tmp_path: Path):
    # A 50 MB comment line used to take 37 s and 1.1 GB; a header is read up to a fixed bound.
    path = tmp_path / "comment.ply"
    path.write_bytes(_header(1, comment=b"x" * (4 << 20)) + _record())
    with pytest.raises(FormatError) as err:
        _load_strict(path)
    msg = str(err.value)
    assert str(path) in msg and "end_header" in msg and "64 KiB" in msg


def test_header_without_end_header_in_small_file(tmp_path: Path):
    path = tmp_path / "noend.ply"
    path.write_bytes(_header(1).replace(b"end_header\n", b""))
    with pytest.raises(FormatError, match="end_header") as err:
        _load_strict(path)
    assert str(path) in str(err.value)


def test_long_but_legal_header_comment_loads(tmp_path: Path):
    # Tools add comments; anything well under the bound is fine.
    path = tmp_path / "c.ply"
    path.write_bytes(_header(1, comment=b"made by a tool " * 1000) + _record(x=5.0))
    assert _load_strict(path).means[0, 0].item() == 5.0


def test_extreme_opacity_logits_saturate_without_warnings(tmp_path: Path):
    path = tmp_path / "o.ply"
    logits = [-1000.0, 1000.0, -3.0e38, 3.0e38, 0.0, -16.0]
    path.write_bytes(_header(len(logits)) + b"".join(_record(opacity=v) for v in logits))
    g = _load_strict(path)
    want = [1.0 / (1.0 + math.exp(-v)) if abs(v) < 700 else float(v > 0) for v in logits]
    assert torch.allclose(g.opacities.double(), torch.tensor(want, dtype=torch.float64),
                          rtol=1e-6, atol=0)


def test_log_scale_overflowing_float32_is_a_format_error(tmp_path: Path):
    path = tmp_path / "s.ply"
    path.write_bytes(_header(3) + _record() + _record(log_scale=(-1.0, 100.0, -1.0))
                     + _record(log_scale=(1000.0, 1000.0, 1000.0)))
    with pytest.raises(FormatError) as err:
        _load_strict(path)
    msg = str(err.value)
    assert str(path) in msg and "2 Gaussian(s)" in msg and "log-scale" in msg


def test_largest_finite_log_scale_loads(tmp_path: Path):
    path = tmp_path / "s88.ply"
    path.write_bytes(_header(1) + _record(log_scale=(88.0, -100.0, 0.0)))
    g = _load_strict(path)
    want = np.array([math.exp(88.0), math.exp(-100.0), 1.0], dtype=np.float32)
    assert np.allclose(g.scales[0].numpy(), want, rtol=1e-6, atol=0)


def test_log_scale_underflowing_is_a_format_error_without_warnings(tmp_path: Path):
    path = tmp_path / "tiny.ply"
    path.write_bytes(_header(1) + _record(log_scale=(-1.0, -3.0e38, -1.0)))
    with pytest.raises(FormatError, match="underflow") as err:
        _load_strict(path)
    assert str(path) in str(err.value)
