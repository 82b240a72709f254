"""The .scene file: exact round trips, a file the safetensors library reads on its own, and hostile
or broken files refused with one FormatError naming them, before anything is allocated or run."""

from __future__ import annotations

import json
import os
import pickle
import time

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch
from scene.builders import ego_layer, make_scene

from splatnet.errors import FormatError
from splatnet.scene import Scene
from splatnet.scene.io import MAX_HEADER_BYTES


def _assert_same_scene(a: Scene, b: Scene) -> None:
    for name, t in a.background.fields().items():
        u = getattr(b.background, name)
        assert t.dtype == u.dtype and t.shape == u.shape and t.numpy().tobytes() == u.numpy().tobytes()
    assert list(a.actors) == list(b.actors)
    for aid, x in a.actors.items():
        y = b.actors[aid]
        assert (x.label, x.size) == (y.label, y.size)
        assert x.track.times.tobytes() == y.track.times.tobytes()
        assert x.track.box_to_world.tobytes() == y.track.box_to_world.tobytes()
        assert (x.track.moving is None) == (y.track.moving is None)
        if x.track.moving is not None:
            assert x.track.moving.tolist() == y.track.moving.tolist()
        for name, t in x.gaussians.fields().items():
            assert t.numpy().tobytes() == getattr(y.gaussians, name).numpy().tobytes()
    assert a.frame_times.tobytes() == b.frame_times.tobytes()
    assert a.ego_to_world.tobytes() == b.ego_to_world.tobytes()
    for ca, cb in zip(a.rig.cameras, b.rig.cameras, strict=True):
        assert (ca.name, ca.width, ca.height) == (cb.name, cb.width, cb.height)
        assert ca.K.tobytes() == cb.K.tobytes() and ca.cam_to_ego.tobytes() == cb.cam_to_ego.tobytes()
    assert (a.sky is None) == (b.sky is None)
    if a.sky is not None:
        assert torch.equal(a.sky.latent, b.sky.latent)
        sa, sb = a.sky.model.state_dict(), b.sky.model.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
        assert a.sky.model.num_frequencies == b.sky.model.num_frequencies
    assert dict(a.metadata) == dict(b.metadata)


@pytest.mark.parametrize("dynamic, sky", [(False, True), (True, False)])
def test_round_trip_is_exact(tmp_path, dynamic, sky):
    scene = make_scene(dynamic=dynamic, sky=sky)
    path = scene.save(tmp_path / "a.scene")
    back = Scene.load(path)
    _assert_same_scene(scene, back)
    # And it renders the same images.
    cams = scene.frame_cameras(1)
    with torch.no_grad():
        assert torch.equal(scene.render(cams).rgb, back.render(cams).rgb)
    assert [p.name for p in tmp_path.iterdir()] == ["a.scene"]  # no temporary left behind


def test_an_edited_scene_round_trips_too(tmp_path):
    scene = make_scene().remove("car_1").move("ped-7", 1.0, 2.0, 0.5)
    _assert_same_scene(scene, Scene.load(scene.save(tmp_path / "e.scene")))


def test_the_file_is_plain_safetensors_with_a_json_description(tmp_path):
    scene = make_scene(dynamic=True)
    path = scene.save(tmp_path / "a.scene")
    with safetensors.safe_open(str(path), framework="pt") as f:  # the library's own reader
        meta = f.metadata()
        means = f.get_tensor("background.means")
        poses = f.get_tensor("actor.0.track.box_to_world")
        keys = set(f.keys())
    assert meta["format"] == "splatnet-scene" and meta["version"] == "1"
    desc = json.loads(meta["scene"])
    assert [a["id"] for a in desc["actors"]] == ["car_1", "ped-7"]
    assert desc["background"] == {"count": 200, "sh_degree": 2, "dynamic": True}
    assert desc["rig"][0] == {"name": "front", "width": 64, "height": 48}
    assert torch.equal(means, scene.background.means)
    assert poses.dtype == torch.float64
    assert np.array_equal(poses.numpy(), scene.actors["car_1"].track.box_to_world)
    assert "background.velocities" in keys and "actor.0.track.moving" in keys
    assert "actor.1.track.moving" not in keys


def test_save_refuses_to_overwrite_without_force(tmp_path):
    scene = make_scene()
    path = scene.save(tmp_path / "a.scene")
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="already exists"):
        scene.remove("car_1").save(path)
    assert path.read_bytes() == before
    scene.remove("car_1").save(path, force=True)
    assert list(Scene.load(path).actors) == ["ped-7"]


# ------------------------------------------------------------------------------------ hostile files
def _rewrite(src, dst, *, tensors=None, meta=None, description=None):
    """Write ``dst`` as ``src`` with some tensors / header fields / description keys changed."""
    t = safetensors.torch.load(src.read_bytes())
    with safetensors.safe_open(str(src), framework="pt") as f:
        m = dict(f.metadata())
    d = json.loads(m["scene"])
    for k, v in (tensors or {}).items():
        if v is None:
            del t[k]
        else:
            t[k] = v
    for k, v in (description or {}).items():
        d[k] = v
    m["scene"] = json.dumps(d)
    m.update(meta or {})
    dst.write_bytes(safetensors.torch.save(t, metadata=m))
    return dst


def _refused(path, match: str) -> str:
    with pytest.raises(FormatError, match=match) as e:
        Scene.load(path)
    msg = str(e.value)
    assert msg.startswith(str(path)) and "\n" not in msg, msg
    return msg


class _Exploit:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))  # creates the marker file if ever unpickled


def test_a_pickle_renamed_scene_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.scene"
    path.write_bytes(pickle.dumps({"scene": _Exploit(marker)}, protocol=4))
    _refused(path, "pickle")
    torch.save({"x": torch.zeros(3)}, tmp_path / "t.scene")
    _refused(tmp_path / "t.scene", "zip")
    assert not marker.exists()


def test_absurd_sizes_are_refused_before_reading_any_tensor(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(safetensors.torch, "load", lambda *a, **k: calls.append(1))
    # A header claiming a terabyte of means in a file of a few hundred bytes.
    good = make_scene().save(tmp_path / "good.scene")
    with safetensors.safe_open(str(good), framework="pt") as f:
        meta = f.metadata()
    d = json.loads(meta["scene"])
    d["background"]["count"] = 10**11
    header = {"__metadata__": {**meta, "scene": json.dumps(d)},
              "background.means": {"dtype": "F32", "shape": [10**11, 3],
                                   "data_offsets": [0, 12 * 10**11]}}
    raw = json.dumps(header).encode()
    path = tmp_path / "huge.scene"
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + b"\0" * 64)
    t0 = time.perf_counter()
    _refused(path, "truncated or padded")
    # The header length itself absurd (2**62 bytes), and just over the limit.
    path.write_bytes((1 << 62).to_bytes(8, "little") + b"{}")
    _refused(path, "header length")
    path.write_bytes((MAX_HEADER_BYTES + 1).to_bytes(8, "little") + b" " * (MAX_HEADER_BYTES + 16))
    _refused(path, "exceeds 16 MiB")
    assert time.perf_counter() - t0 < 2.0 and not calls


def test_broken_files_are_one_format_error_naming_the_file(tmp_path):
    good = make_scene(dynamic=True).save(tmp_path / "good.scene")
    data = good.read_bytes()
    bad = tmp_path / "bad.scene"
    bad.write_bytes(data[:-10])
    _refused(bad, "truncated")
    bad.write_bytes(data[:5])
    _refused(bad, "too short")
    bad.write_bytes(b"")
    _refused(bad, "too short")
    n = int.from_bytes(data[:8], "little")
    bad.write_bytes(data[:8] + b"\xff" * n + data[8 + n:])
    _refused(bad, "header is not JSON")
    bad.write_bytes(data[:8] + b"[" + b" " * (n - 1) + data[8 + n:])
    _refused(bad, "not JSON")
    (tmp_path / "dir.scene").mkdir()
    _refused(tmp_path / "dir.scene", "is a directory")
    with pytest.raises(FileNotFoundError, match="missing.scene"):
        Scene.load(tmp_path / "missing.scene")


@pytest.mark.parametrize("change, match", [
    (dict(tensors={"background.means": torch.zeros(200, 3, dtype=torch.float64)}),
     r"tensor 'background.means' is F64 \[200, 3\], expected F32 \[200, 3\]"),
    (dict(tensors={"rig.K": None}), "tensor 'rig.K' is missing"),
    (dict(tensors={"actor.1.track.times": None, "actor.1.means": None}), r"is missing \(and 1 more\)"),
    (dict(tensors={"extra": torch.zeros(2)}), "unexpected tensor 'extra'"),
    (dict(tensors={"background.sh": torch.zeros(200, 4, 3)}), r"'background.sh' is F32 \[200, 4, 3\]"),
    (dict(meta={"version": "5"}), "version 5 is newer than this splatnet reads"),
    (dict(meta={"version": "one"}), "version 'one'"),
    (dict(meta={"format": "splatnet-model"}), "format is 'splatnet-model'"),
    (dict(meta={"extra": "x"}), "unknown header key 'extra'"),
    (dict(meta={"scene": "{not json"}), "description is not JSON"),
    (dict(description={"colour": 1}), "unknown key 'colour'"),
    (dict(description={"frames": -1}), "frames must be a positive integer"),
    (dict(description={"sky": {"context_dim": 10**9, "hidden_dim": 1, "latent_dim": 1,
                               "num_frequencies": 1}}), "sky.context_dim"),
    (dict(description={"background": {"count": 200, "sh_degree": 1.0, "dynamic": True}}),
     "sh_degree 0-3"),
])
def test_malformed_contents_are_refused(tmp_path, change, match):
    good = make_scene(dynamic=True).save(tmp_path / "good.scene")
    _refused(_rewrite(good, tmp_path / "bad.scene", **change), match)


def _tensor(path, name):
    return safetensors.torch.load(path.read_bytes())[name].clone()


@pytest.mark.parametrize("name, edit, match", [
    ("background.means", lambda t: t.index_fill_(0, torch.tensor([3]), float("nan")),
     "background: means: 3 non-finite"),
    ("background.scales", lambda t: t.neg_(), "background: scales"),
    ("background.times", lambda t: t.fill_(float("inf")), "background: times"),
    ("actor.0.track.box_to_world", lambda t: t.__setitem__((2, 0, 1), 0.5) or t,
     r"actor 'car_1': track\[2\].box_to_world .*not rigid"),
    ("actor.0.track.box_to_world", lambda t: t.__setitem__((1, 0, 0), float("nan")) or t,
     r"actor 'car_1'.*NaN"),
    ("actor.1.track.times", lambda t: t.flip(0), r"actor 'ped-7': track.times: .*strictly increasing"),
    ("ego.ego_to_world", lambda t: t.__setitem__((0, 3, 3), 2.0) or t, r"ego_to_world\[0\]"),
    ("ego.frame_times", lambda t: t.fill_(0.0), "frame_times: .*strictly increasing"),
    ("rig.K", lambda t: t.__setitem__((0, 0, 1), 5.0) or t, "rig camera 'front'.K"),
    ("sky.latent", lambda t: t.fill_(float("nan")), "sky.latent"),
])
def test_bad_values_are_refused_naming_the_field(tmp_path, name, edit, match):
    good = make_scene(dynamic=True).save(tmp_path / "good.scene")
    t = edit(_tensor(good, name))
    _refused(_rewrite(good, tmp_path / "bad.scene", tensors={name: t}), match)


@pytest.mark.parametrize("key, value, match", [
    ("id", "a,b", "id must be"),
    ("id", 7, "id must be"),
    ("size", [4, 0, 1], r"size: expected \[length, width, height\]"),
    ("label", "x" * 1000, "label must be"),
])
def test_bad_actor_descriptions_are_refused(tmp_path, key, value, match):
    good = make_scene().save(tmp_path / "good.scene")
    with safetensors.safe_open(str(good), framework="pt") as f:
        actors = json.loads(f.metadata()["scene"])["actors"]
    actors[0][key] = value
    _refused(_rewrite(good, tmp_path / "bad.scene", description={"actors": actors}), match)


def test_a_duplicate_actor_id_is_refused(tmp_path):
    good = make_scene().save(tmp_path / "good.scene")
    with safetensors.safe_open(str(good), framework="pt") as f:
        actors = json.loads(f.metadata()["scene"])["actors"]
    actors[1]["id"] = actors[0]["id"]
    _refused(_rewrite(good, tmp_path / "bad.scene", description={"actors": actors}), "used twice")


def test_a_scene_loads_on_another_device_only_when_asked(tmp_path):
    path = make_scene().save(tmp_path / "a.scene")
    assert Scene.load(path, device="cpu").device.type == "cpu"
    assert os.path.getsize(path) > 0


def test_colour_matrices_round_trip_and_only_they_make_a_version_2_file(tmp_path):
    """A scene with colour matrices is a version-2 file (older splatnet says to upgrade rather
    than misread it); without them it stays version 1. Read back with the safetensors library."""
    mats = {"front": np.array([[1.1, 0, 0, -0.02], [0, 0.9, 0, 0.01], [0, 0, 1.05, 0.0]]),
            "front_left": np.eye(3, 4) * 0.97}
    plain = make_scene()
    scene = plain.replace(colour=mats)
    p1, p2 = plain.save(tmp_path / "plain.scene"), scene.save(tmp_path / "colour.scene")
    for path, version, names in ((p1, "1", None), (p2, "2", ["front", "front_left"])):
        with safetensors.safe_open(path, "pt") as f:
            meta = f.metadata()
            assert meta["version"] == version
            assert json.loads(meta["scene"]).get("colour") == names
            if names:
                m = f.get_tensor("colour.matrices")
                assert m.dtype == torch.float64 and m.numpy().tobytes() == np.stack(
                    [mats[n] for n in names]).tobytes()
            else:
                assert "colour.matrices" not in f.keys()
    back = Scene.load(p2)
    _assert_same_scene(scene, back)
    assert list(back.colour) == ["front", "front_left"]
    assert all(back.colour[n].tobytes() == mats[n].astype(np.float64).tobytes() for n in mats)
    assert Scene.load(p1).colour == {}
    cams = scene.frame_cameras(2)
    with torch.no_grad():
        assert torch.equal(scene.render(cams).rgb, back.render(cams).rgb)



_EYE = torch.eye(3, 4, dtype=torch.float64)


def test_an_ego_layer_round_trips_exactly_as_version_2(tmp_path):
    scene = make_scene().replace(ego=ego_layer())
    back = Scene.load(scene.save(tmp_path / "e.scene"))
    with safetensors.safe_open(tmp_path / "e.scene", "pt") as f:
        assert f.metadata()["version"] == "2"
        assert json.loads(f.metadata()["scene"])["ego_layer"] == {"estimated": True, "cameras": [
            {"name": "front_left", "height": 48, "width": 64, "frames": 2, "times": True}]}
    for part in ("masks", "images", "times"):
        a, b = getattr(scene.ego, part)["front_left"], getattr(back.ego, part)["front_left"]
        assert a.dtype == b.dtype and torch.equal(a, b)
    assert back.ego.estimated is True
    cams = scene.frame_cameras(2)
    with torch.no_grad():
        assert torch.equal(scene.render(cams).rgb, back.render(cams).rgb)
    untimed = make_scene().replace(ego=ego_layer(times=False))
    assert Scene.load(untimed.save(tmp_path / "u.scene")).ego.times == {"front_left": None}


def test_an_upsample_filter_round_trips(tmp_path):
    from splatnet.scene.layers import UpsampleFilter

    scene = make_scene().replace(upsample=UpsampleFilter({"front": 61.5, "front_left": 60.25}, 0.23, 48))
    back = Scene.load(scene.save(tmp_path / "u.scene"))
    assert back.upsample == scene.upsample
    with safetensors.safe_open(tmp_path / "u.scene", "pt") as f:
        assert f.metadata()["version"] == "2"
    bad = _rewrite(tmp_path / "u.scene", tmp_path / "bad.scene",
                   description={"upsample_filter": {"sigma": "0.2", "focals": {"front": 61.5}, "height": 48}})
    _refused(bad, "upsample_filter: sigma must be a number")
    bad = _rewrite(tmp_path / "u.scene", tmp_path / "bad2.scene",
                   description={"upsample_filter": {"sigma": 0.2, "focals": {"rear": 61.5}, "height": 48}})
    _refused(bad, "'rear' is not a camera of the rig")


@pytest.mark.parametrize("change, match", [
    (dict(meta={"version": "1"}), "unknown key 'ego_layer'"),
    (dict(description={"ego_layer": {"estimated": True, "cameras": [
        {"name": "rear", "height": 48, "width": 64, "frames": 2, "times": True}]}}),
     r"ego_layer.cameras\[0\]: name must be a rig camera's"),
    (dict(description={"ego_layer": {"estimated": True, "cameras": [
        {"name": "front_left", "height": 48, "width": 64, "frames": 2000, "times": True}]}}),
     "frames 1..1024"),
    (dict(description={"ego_layer": {"estimated": 1, "cameras": []}}), "estimated must be"),
    (dict(tensors={"ego_layer.0.times": None}), "tensor 'ego_layer.0.times' is missing"),
    (dict(tensors={"ego_layer.0.images": torch.full((2, 48, 64, 3), 2.0)}), r"in \[0, 1\]"),
])
def test_bad_ego_layer_entries_are_refused(tmp_path, change, match):
    good = make_scene().replace(ego=ego_layer()).save(tmp_path / "good.scene")
    _refused(_rewrite(good, tmp_path / "bad.scene", **change), match)


@pytest.mark.parametrize("change, match", [
    (dict(meta={"version": "1"}), "unknown key 'colour'"),
    (dict(description={"colour": ["front", "rear"]}),
     "colour must be a non-empty list of distinct rig camera names"),
    (dict(description={"colour": ["front", "front"]}), "distinct rig camera names"),
    (dict(description={"colour": []}), "non-empty list"),
    (dict(tensors={"colour.matrices": None}), "tensor 'colour.matrices' is missing"),
    (dict(tensors={"colour.matrices": _EYE[None]}),
     r"tensor 'colour.matrices' is F64 \[1, 3, 4\], expected F64 \[2, 3, 4\]"),
    (dict(tensors={"colour.matrices": torch.stack([_EYE, _EYE * float("nan")])}),
     r"colour\['front_left'\]: non-finite"),
])
def test_bad_colour_entries_are_refused(tmp_path, change, match):
    good = make_scene().replace(colour={"front": np.eye(3, 4), "front_left": np.eye(3, 4)}).save(
        tmp_path / "good.scene")
    _refused(_rewrite(good, tmp_path / "bad.scene", **change), match)
