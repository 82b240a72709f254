"""Loading torch weight files prints nothing: torch's pickle-protocol warning would break the
CLI's one-line rule (a file saved with ``pickle_protocol=3`` loads fine under weights_only)."""

from __future__ import annotations

import warnings

import pytest
import torch

from splatnet.errors import FormatError
from splatnet.metrics.lpips import LPIPS
from splatnet.models.config import EncoderConfig
from splatnet.models.encoder import Encoder


def _quiet(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    assert [str(w.message) for w in caught] == []
    return out


def test_torch_file_saved_with_protocol_3_warns_in_torch_itself(tmp_path):
    """The premise: torch.load(weights_only=True) does warn on these files."""
    torch.save({"w": torch.ones(2)}, tmp_path / "p3.pth", pickle_protocol=3)
    with pytest.warns(UserWarning, match="pickle protocol 3"):
        torch.load(tmp_path / "p3.pth", weights_only=True)


@pytest.mark.parametrize("zipped", [True, False])
def test_lpips_weights_load_without_warnings(tmp_path, zipped):
    torch.manual_seed(0)
    state = LPIPS("alex").state_dict()
    state = {k: torch.randn_like(v) for k, v in state.items()}
    path = tmp_path / "lpips_alex.pth"
    torch.save(state, path, pickle_protocol=3, _use_new_zipfile_serialization=zipped)
    m = _quiet(lambda: LPIPS.from_files(path))
    for k, v in state.items():
        assert torch.equal(m.state_dict()[k], v), k


def test_encoder_weights_load_without_warnings(tmp_path):
    cfg = EncoderConfig(stem_dim=8, mid_dim=8, low_dim=8, matching_dim=4, context_dim=4)
    torch.manual_seed(0)
    state = {k: torch.randn_like(v) for k, v in Encoder(cfg).state_dict().items()}
    path = tmp_path / "enc.pth"
    torch.save(state, path, pickle_protocol=3)
    enc = _quiet(lambda: Encoder(EncoderConfig(**{**cfg.__dict__, "weights": str(path)})))
    for k, v in state.items():
        assert torch.equal(enc.state_dict()[k], v), k


def test_an_unreadable_protocol_is_one_error_and_no_warning(tmp_path):
    """Protocol 4 is beyond weights_only's unpickler: a FormatError, and still no warning."""
    path = tmp_path / "p4.pth"
    torch.save(LPIPS("alex").state_dict(), path, pickle_protocol=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(FormatError) as err:
            LPIPS.from_files(path)
    assert [str(w.message) for w in caught] == []
    assert str(path) in str(err.value) and len(str(err.value).splitlines()) == 1
