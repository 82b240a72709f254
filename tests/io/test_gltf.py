"""glb with KHR_gaussian_splatting: exact float32 round trips (SH degrees 0-3, empty, single), the
file checked with pygltflib (an independent glTF parser) against the extension's attribute list,
accessor types and axes, node transforms, and one clear error for malformed files."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from conftest import random_gaussians

from splatnet import Gaussians
from splatnet.errors import FormatError
from splatnet.io.gltf import read_glb, write_glb

pygltflib = pytest.importorskip("pygltflib")
P = "KHR_gaussian_splatting:"


def _cov(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    from splatnet.gaussians import quat_to_rotmat

    r = quat_to_rotmat(quats.double())
    return r @ torch.diag_embed(scales.double() ** 2) @ r.transpose(-1, -2)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_is_exact(tmp_path, degree):
    g = random_gaussians(200, sh_degree=degree, seed=degree)
    write_glb(g, tmp_path / "a.glb", clamp_colors=False)
    r = read_glb(tmp_path / "a.glb")
    assert torch.equal(r["means"], g.means) and torch.equal(r["scales"], g.scales)
    assert torch.equal(r["opacities"], g.opacities) and torch.equal(r["sh"], g.sh)
    assert torch.allclose(_cov(r["quats"], r["scales"]), _cov(g.quats, g.scales), atol=1e-6)


def _accessor(gltf, blob: bytes, index: int) -> np.ndarray:
    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    dtype = {5126: "<f4", 5121: "u1"}[acc.componentType]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[acc.type]
    start = (view.byteOffset or 0) + (acc.byteOffset or 0)
    return np.frombuffer(blob, dtype, acc.count * width, start).reshape(acc.count, width)


def test_file_follows_the_extension(tmp_path):
    """Checked with pygltflib: extensionsUsed, POINTS primitive, the extension's properties, every
    attribute name, accessor type and component type, POSITION bounds, and values: positions in
    glTF axes (x, y, z -> -x, -y, z), x-y-z-w unit quaternions, linear scales, activated opacity."""
    g = random_gaussians(50, sh_degree=2)
    write_glb(g, tmp_path / "a.glb", clamp_colors=False)
    gltf = pygltflib.GLTF2().load(str(tmp_path / "a.glb"))
    blob = gltf.binary_blob()
    assert gltf.asset.version == "2.0" and gltf.extensionsUsed == ["KHR_gaussian_splatting"]
    prim = gltf.meshes[gltf.nodes[gltf.scenes[gltf.scene].nodes[0]].mesh].primitives[0]
    assert prim.mode == pygltflib.POINTS
    assert prim.extensions["KHR_gaussian_splatting"] == {
        "kernel": "ellipse", "colorSpace": "srgb_rec709_display", "projection": "perspective",
        "sortingMethod": "cameraDistance"}
    attrs = {k: v for k, v in vars(prim.attributes).items() if v is not None}
    sh_names = [f"{P}SH_DEGREE_{b}_COEF_{c}" for b in range(3) for c in range(2 * b + 1)]
    assert set(attrs) == {"POSITION", "COLOR_0", f"{P}ROTATION", f"{P}SCALE", f"{P}OPACITY", *sh_names}
    kinds = {name: (gltf.accessors[i].type, gltf.accessors[i].componentType, gltf.accessors[i].count)
             for name, i in attrs.items()}
    assert kinds["POSITION"] == ("VEC3", pygltflib.FLOAT, 50)
    assert kinds[f"{P}ROTATION"] == ("VEC4", pygltflib.FLOAT, 50)
    assert kinds[f"{P}SCALE"] == ("VEC3", pygltflib.FLOAT, 50)
    assert kinds[f"{P}OPACITY"] == ("SCALAR", pygltflib.FLOAT, 50)
    assert kinds["COLOR_0"] == ("VEC4", pygltflib.UNSIGNED_BYTE, 50)
    assert gltf.accessors[attrs["COLOR_0"]].normalized
    assert all(kinds[n] == ("VEC3", pygltflib.FLOAT, 50) for n in sh_names)
    pos = _accessor(gltf, blob, attrs["POSITION"])
    expect = g.means.numpy() * np.array([-1, -1, 1], dtype=np.float32)
    assert np.array_equal(pos, expect)
    assert gltf.accessors[attrs["POSITION"]].min == pytest.approx(expect.min(0).tolist())
    assert gltf.accessors[attrs["POSITION"]].max == pytest.approx(expect.max(0).tolist())
    rot = _accessor(gltf, blob, attrs[f"{P}ROTATION"])
    assert np.allclose(np.linalg.norm(rot, axis=1), 1, atol=1e-6)
    assert np.array_equal(_accessor(gltf, blob, attrs[f"{P}SCALE"]), g.scales.numpy())
    assert np.array_equal(_accessor(gltf, blob, attrs[f"{P}OPACITY"])[:, 0], g.opacities.numpy())
    # SH band 1, order m = -1 (coefficient 0) flips sign under the half turn about z; m = 0 keeps it.
    assert np.array_equal(_accessor(gltf, blob, attrs[f"{P}SH_DEGREE_1_COEF_0"]), -g.sh[:, 1].numpy())
    assert np.array_equal(_accessor(gltf, blob, attrs[f"{P}SH_DEGREE_1_COEF_1"]), g.sh[:, 2].numpy())
    for i, view in enumerate(gltf.bufferViews):
        assert view.byteOffset % 4 == 0 and view.byteOffset + view.byteLength <= len(blob), i


def test_single_and_empty(tmp_path):
    one = random_gaussians(1, sh_degree=3)
    write_glb(one, tmp_path / "one.glb", clamp_colors=False)
    assert torch.equal(read_glb(tmp_path / "one.glb")["means"], one.means)
    write_glb(random_gaussians(0), tmp_path / "empty.glb")
    assert pygltflib.GLTF2().load(str(tmp_path / "empty.glb")).meshes == []
    assert read_glb(tmp_path / "empty.glb")["means"].shape == (0, 3)


def _rewrite(path, edit) -> bytes:
    """The glb at ``path`` with its JSON changed by ``edit(doc)`` (chunks re-laid)."""
    data = path.read_bytes()
    n = struct.unpack_from("<I", data, 12)[0]
    doc = json.loads(data[20:20 + n])
    edit(doc)
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    rest = data[20 + n:]
    body = struct.pack("<II", len(text), 0x4E4F534A) + text + rest
    return struct.pack("<III", 0x46546C67, 2, 12 + len(body)) + body


def test_node_transforms_are_applied(tmp_path):
    g = random_gaussians(20, sh_degree=1)
    write_glb(g, tmp_path / "a.glb", clamp_colors=False)

    def move(doc):
        doc["nodes"] = [{"children": [1], "translation": [1.0, 2.0, 3.0]}, {"mesh": 0, "scale": [2, 2, 2]}]
        doc["scenes"] = [{"nodes": [0]}]

    (tmp_path / "moved.glb").write_bytes(_rewrite(tmp_path / "a.glb", move))
    r = read_glb(tmp_path / "moved.glb")
    # In glTF axes the node maps p to 2 p + (1, 2, 3); in splatnet's axes that is 2 p + (-1, -2, 3).
    assert torch.allclose(r["means"], 2 * g.means + torch.tensor([-1.0, -2.0, 3.0]), atol=1e-5)
    assert torch.allclose(r["scales"], 2 * g.scales)

    def shear(doc):
        doc["nodes"][0]["scale"] = [1, 2, 1]

    (tmp_path / "shear.glb").write_bytes(_rewrite(tmp_path / "a.glb", shear))
    with pytest.raises(FormatError, match="uniform scale"):
        read_glb(tmp_path / "shear.glb")


def test_malformed_files_are_one_clear_error(tmp_path):
    write_glb(random_gaussians(10, sh_degree=1), tmp_path / "ok.glb")
    ok = tmp_path / "ok.glb"
    data = ok.read_bytes()

    def drop(name):
        return lambda d: d["meshes"][0]["primitives"][0]["attributes"].pop(name)

    def setp(key, value):
        return lambda d: d["meshes"][0]["primitives"][0].__setitem__(key, value)

    def acc(key, value):
        return lambda d: d["accessors"][0].__setitem__(key, value)

    cases = {
        "truncated": (data[:-7], "truncated glb"),
        "magic": (b"gLTF" + data[4:], "not a glb"),
        "version": (data[:4] + struct.pack("<I", 1) + data[8:], "version 1"),
        "lying length": (data[:8] + struct.pack("<I", len(data) + 4) + data[12:], "truncated glb"),
        "lying chunk": (data[:12] + struct.pack("<I", 10 ** 7) + data[16:], "claims"),
        "bad json": (data[:20] + b"x" + data[21:], "not valid JSON"),
        "missing scale": (_rewrite(ok, drop(f"{P}SCALE")), "lacks"),
        "triangles": (_rewrite(ok, setp("mode", 4)), "mode 0"),
        "count mismatch": (_rewrite(ok, acc("count", 9)), "disagree"),
        "out of range": (_rewrite(ok, acc("count", 10 ** 6)), "do not fit"),
        "bad view": (_rewrite(ok, acc("bufferView", 99)), "does not exist"),
        "sparse": (_rewrite(ok, acc("sparse", {})), "sparse"),
        "int positions": (_rewrite(ok, acc("componentType", 5121)), "not allowed"),
        "required": (_rewrite(ok, lambda d: d.__setitem__("extensionsRequired",
                                                          ["EXT_meshopt_compression"])),
                     "EXT_meshopt_compression"),
        "external": (_rewrite(ok, lambda d: d["buffers"][0].__setitem__("uri", "a.bin")), "external"),
        "half sh": (_rewrite(ok, drop(f"{P}SH_DEGREE_1_COEF_2")), "SH_DEGREE_1_COEF_2"),
        "no splats": (_rewrite(ok, lambda d: d["meshes"][0]["primitives"][0].pop("extensions")),
                      "no KHR_gaussian_splatting primitive"),
    }
    for name, (blob, match) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.glb"
        path.write_bytes(blob)
        with pytest.raises(FormatError, match=match) as e:
            read_glb(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value), name


def test_normalized_integer_attributes_are_read(tmp_path):
    """The extension allows normalized signed-short rotations and unsigned-byte opacities."""
    g = random_gaussians(8, sh_degree=0)
    write_glb(g, tmp_path / "a.glb", clamp_colors=False)
    gltf = pygltflib.GLTF2().load(str(tmp_path / "a.glb"))
    blob = bytearray(gltf.binary_blob())
    attrs = vars(gltf.meshes[0].primitives[0].attributes)
    r_acc = gltf.accessors[attrs[f"{P}ROTATION"]]
    o_acc = gltf.accessors[attrs[f"{P}OPACITY"]]
    rot = _accessor(gltf, bytes(blob), attrs[f"{P}ROTATION"])
    opa = _accessor(gltf, bytes(blob), attrs[f"{P}OPACITY"])
    shorts = np.round(rot * 32767).astype("<i2").tobytes()
    ubytes = np.round(opa[:, 0] * 255).astype("u1").tobytes()
    at = len(blob)
    blob += shorts + ubytes + bytes(-(len(shorts) + len(ubytes)) % 4)
    gltf.bufferViews.append(pygltflib.BufferView(buffer=0, byteOffset=at, byteLength=len(shorts)))
    gltf.bufferViews.append(pygltflib.BufferView(buffer=0, byteOffset=at + len(shorts),
                                                 byteLength=len(ubytes)))
    r_acc.bufferView, r_acc.componentType, r_acc.normalized = len(gltf.bufferViews) - 2, 5122, True
    o_acc.bufferView, o_acc.componentType, o_acc.normalized = len(gltf.bufferViews) - 1, 5121, True
    gltf.buffers[0].byteLength = len(blob)
    gltf.set_binary_blob(bytes(blob))
    gltf.save_binary(str(tmp_path / "q.glb"))
    r = read_glb(tmp_path / "q.glb")
    assert (r["opacities"] - g.opacities).abs().max() <= 0.5 / 255 + 1e-6
    assert torch.allclose(_cov(r["quats"], r["scales"]), _cov(g.quats, g.scales), atol=2e-4 * 4)
    assert Gaussians.load(tmp_path / "q.glb").num_gaussians == 8


def test_a_file_without_scenes_reads_its_root_nodes(tmp_path):
    g = random_gaussians(6, sh_degree=0)
    write_glb(g, tmp_path / "a.glb", clamp_colors=False)

    def no_scene(doc):
        doc.pop("scenes"), doc.pop("scene")
        doc["nodes"] = [{"children": [1]}, {"mesh": 0}]

    (tmp_path / "b.glb").write_bytes(_rewrite(tmp_path / "a.glb", no_scene))
    assert torch.equal(read_glb(tmp_path / "b.glb")["means"], g.means)


def test_a_rotated_node_turns_means_covariances_and_view_dependent_colour(tmp_path):
    from splatnet.sh import eval_sh

    g = random_gaussians(30, sh_degree=3)
    write_glb(g, tmp_path / "a.glb", clamp_colors=False)
    c, s = np.cos(0.7), np.sin(0.7)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])  # 0.7 rad about glTF's y (up)
    quat_xyzw = [0.0, np.sin(0.35), 0.0, np.cos(0.35)]

    def turn(doc):
        doc["nodes"][0]["rotation"] = quat_xyzw

    (tmp_path / "r.glb").write_bytes(_rewrite(tmp_path / "a.glb", turn))
    r = read_glb(tmp_path / "r.glb")
    flip = np.diag([-1.0, -1.0, 1.0])  # glTF axes <-> splatnet's PLY axes
    a = torch.tensor(flip @ rot @ flip)  # the node's rotation in splatnet's axes
    assert torch.allclose(r["means"].double(), g.means.double() @ a.T, atol=1e-5)
    assert torch.allclose(_cov(r["quats"], r["scales"]), a @ _cov(g.quats, g.scales) @ a.T, atol=1e-5)
    d = torch.nn.functional.normalize(torch.randn(30, 3, dtype=torch.float64), dim=-1)
    want = eval_sh(g.sh.double(), d)
    got = eval_sh(r["sh"].double(), d @ a.T)
    assert torch.allclose(got, want, atol=1e-4)
