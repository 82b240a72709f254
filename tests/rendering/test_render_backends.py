"""The backend registry (splatnet/rendering/backends.py): what ``select`` picks and refuses."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from splatnet import BackendUnavailableError, ValidationError
from splatnet.rendering import backends

CPU = torch.device("cpu")


def test_auto_picks_by_dtype_and_device():
    assert backends.select("auto", CPU, torch.float64).name == "torch"
    assert backends.select("auto", CPU, torch.float32).name == "cpu"
    assert backends.names()[:1] == ("auto",) and {"torch", "cpu", "cuda", "gsplat"} <= set(backends.names())


def test_named_backends_are_checked_against_the_tensors():
    with pytest.raises(ValidationError, match="computes in float32"):
        backends.select("cpu", CPU, torch.float64)
    with pytest.raises(ValidationError, match="needs CUDA tensors"):
        backends.select("cuda", CPU, torch.float32)
    with pytest.raises(ValidationError, match="expected one of"):
        backends.select("vulkan", CPU, torch.float32)


def test_an_unavailable_backend_says_why(monkeypatch):
    fake = backends.Backend("fake", ("cpu",), True, lambda: "no fake hardware here; buy one",
                            stages=lambda: (None, None))
    monkeypatch.setitem(backends._REGISTRY, "fake", fake)
    with pytest.raises(BackendUnavailableError, match=r"^backend 'fake': no fake hardware here"):
        backends.select("fake", CPU, torch.float32)


def test_auto_falls_back_to_the_reference_only_when_asked(monkeypatch):
    broken = dataclasses.replace(backends.get("cpu"), unavailable=lambda: "extension missing")
    monkeypatch.setitem(backends._REGISTRY, "cpu", broken)
    with pytest.raises(BackendUnavailableError, match="extension missing"):
        backends.select("auto", CPU, torch.float32)
    with pytest.warns(UserWarning, match="reference renderer"):
        assert backends.select("auto", CPU, torch.float32, fallback_to_reference=True).name == "torch"


def test_a_backend_is_stages_or_one_render_call():
    with pytest.raises(ValidationError, match="stages or render"):
        backends.register(backends.Backend("both", ("cpu",), False, lambda: None,
                                           stages=lambda: None, render=lambda: None))
