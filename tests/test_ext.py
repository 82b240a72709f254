"""The compiled extension: build information and the CUDA-less error message."""

from __future__ import annotations

import pytest
import torch

from splatnet import BackendUnavailableError, _ext


def test_build_info_is_reported():
    info = _ext.build_info()
    assert isinstance(info["cuda"], bool)
    if not info["cuda"]:
        assert info["reason"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="machine has a GPU")
def test_cuda_less_error_names_cause_and_fix():
    why = _ext.cuda_unavailable_reason()
    assert why is not None
    with pytest.raises(BackendUnavailableError) as err:
        _ext.require_cuda()
    msg = str(err.value)
    if not _ext.build_info()["cuda"]:
        assert "built without its CUDA kernels" in msg and "SPLATNET_FORCE_CUDA=1" in msg
        assert _ext.build_info()["reason"] in msg
    else:
        assert "no CUDA device" in msg


def test_missing_extension_names_the_fix(monkeypatch):
    monkeypatch.setattr(_ext, "_load", lambda: (False, "the compiled extension splatnet._C could "
                                                       "not be imported (boom)"))
    with pytest.raises(BackendUnavailableError, match="pip install --no-build-isolation"):
        _ext.require_cpu()
    assert "boom" in _ext.cuda_unavailable_reason()
