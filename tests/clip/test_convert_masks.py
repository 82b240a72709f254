"""``splatnet convert ... --masks DIR``: per-camera validity masks (e.g. DDAD's self-occlusion
masks) become the clip's camera masks; bad mask folders are one clear error."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image

from splatnet.clip import Clip
from splatnet.clip.convert import convert
from splatnet.errors import ValidationError

DGP = SHARED_DATA / "dgp_scene" / "scene_02"
pytestmark = pytest.mark.skipif(not DGP.is_dir(), reason="shared DGP sample data not present")


def _hood(w: int, h: int, frac: float = 0.2) -> np.ndarray:
    m = np.full((h, w), 255, np.uint8)
    m[int(h * (1 - frac)):] = 0
    return m


def test_masks_become_camera_masks(tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    Image.fromarray(_hood(1936, 1216)).save(masks / "CAMERA_05.png")
    Image.fromarray(_hood(484, 304)).save(masks / "CAMERA_09.png")  # a quarter size: resized
    clip = Clip.load(convert("dgp", DGP, tmp_path / "clip", masks=masks))
    assert clip.camera("CAMERA_05").mask is not None and clip.camera("CAMERA_01").mask is None
    v = clip.views(frames=[0], cameras=["CAMERA_05", "CAMERA_09", "CAMERA_01"], size=(152, 242))
    want = np.ones((152, 242), bool)
    want[int(152 * 0.8):] = False
    np.testing.assert_array_equal(v.masks[0, ..., 0].numpy(), want)
    np.testing.assert_array_equal(v.masks[1, ..., 0].numpy(), want)
    assert bool(v.masks[2].all())


@pytest.mark.parametrize("make, msg", [
    (lambda d: Image.fromarray(_hood(1936, 1216)).save(d / "CAMERA_99.png"), "names no camera"),
    (lambda d: Image.fromarray(_hood(1000, 1000)).save(d / "CAMERA_05.png"), "aspect ratio"),
    (lambda d: None, "no .png files"),
])
def test_bad_mask_folders(tmp_path, make, msg):
    d = tmp_path / "m"
    d.mkdir()
    make(d)
    with pytest.raises(ValidationError, match=msg):
        convert("dgp", DGP, tmp_path / "clip", masks=d)
    assert not (tmp_path / "clip").exists()


def test_inverted_mask_warns_and_other_converters_refuse(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    Image.fromarray(255 - _hood(1936, 1216)).save(d / "CAMERA_05.png")
    with pytest.warns(UserWarning, match="inverted"):
        convert("dgp", DGP, tmp_path / "clip", masks=d)
    with pytest.raises(ValidationError, match="colmap converter does not take camera masks"):
        convert("colmap", tmp_path, tmp_path / "c2", masks=d)
    r = subprocess.run([sys.executable, "-m", "splatnet", "convert", "colmap", str(tmp_path),
                        str(tmp_path / "c3"), "--masks", str(d)], capture_output=True, text=True)
    assert r.returncode == 1 and "--masks" in r.stderr and len(r.stderr.strip().splitlines()) == 1
