"""The inference size rule (pipeline.feedforward.network_size), worked out by hand, and where it
applies: splatnet.reconstruct and splatnet eval's defaults."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import splatnet
from splatnet import FormatError
from splatnet.pipeline.feedforward import network_size

REPO = Path(__file__).resolve().parents[2]


class _Model:
    def __init__(self, working_size, stride=2):
        self.working_size = working_size
        self.stride = stride


def test_rule_by_hand():
    m = _Model((128, 224))  # 28,672 pixels
    assert network_size(m, (256, 448)) == (128, 224)  # same aspect: the working size itself
    assert network_size(m, (128, 200)) == (128, 200)  # fewer pixels than the working size: as is
    assert network_size(m, (127, 201)) == (126, 200)  # ... rounded down to the stride
    # DDAD 1216x1936: sqrt(28672 * 1216 / 1936) = 134.19 -> 134; sqrt(28672 * 1936 / 1216) = 213.66 -> 214
    assert network_size(m, (1216, 1936)) == (134, 214)
    # PandaSet 1080x1920: sqrt(16128) = 126.996 -> 2 * round(63.498) = 126; 225.77 -> 226
    assert network_size(m, (1080, 1920)) == (126, 226)
    assert network_size(_Model(None), (256, 448)) == (256, 448)  # no working size: the output
    with pytest.raises(splatnet.ValidationError, match="too small"):
        network_size(_Model(None, stride=8), (4, 4))


def test_the_shipped_model_states_its_working_size_and_reconstruct_uses_it(tmp_path):
    model = splatnet.load_model()
    assert model.working_size == (128, 224)
    from splatnet.pipeline.feedforward import reconstruct_clip

    clip = splatnet.Clip.load(REPO / "examples" / "data" / "sample_clip")  # native 256x448
    rec = reconstruct_clip(clip, model, frames=[0])
    assert rec.size == (128, 224)
    # A model file that does not state it runs at the clip's native size.
    for ext in (".safetensors", ".json"):
        shutil.copy(splatnet.io.checkpoint.DEFAULT_MODEL.with_suffix(ext), tmp_path / f"m{ext}")
    side = json.loads((tmp_path / "m.json").read_text())
    del side["extra"]["working_size"]
    (tmp_path / "m.json").write_text(json.dumps(side))
    plain = splatnet.load_model(tmp_path / "m")
    assert plain.working_size is None
    assert network_size(plain, (256, 448)) == (256, 448)
    side["extra"]["working_size"] = [128, "wide"]
    (tmp_path / "m.json").write_text(json.dumps(side))
    with pytest.raises(FormatError, match=r"m\.json: extra\.working_size must be \[H, W\]"):
        splatnet.load_model(tmp_path / "m")


def test_eval_scores_at_native_size_with_the_network_at_its_working_size():
    from splatnet.pipeline.evaluate import evaluate_clip

    clip = splatnet.Clip.load(REPO / "examples" / "data" / "sample_clip")
    report = evaluate_clip(clip, splatnet.load_model(), holdout_frames=[1])
    assert report["size"] == [256, 448] and report["network_size"] == [128, 224]
    report = evaluate_clip(clip, splatnet.load_model(), holdout_frames=[1], size=(128, 224),
                           network_size=(64, 112))
    assert report["size"] == [128, 224] and report["network_size"] == [64, 112]
