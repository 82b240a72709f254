"""Optional dependencies: a missing one is one line naming the module and the pip extra that
installs it (simulated by ``sys.modules[name] = None``, which makes ``import name`` fail)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from splatnet.errors import BackendUnavailableError, SplatnetError

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "data" / "sample_clip"


def test_require_returns_an_installed_module():
    from splatnet._optional import require

    assert require("json", "reading JSON", extra=None) is sys.modules["json"]


@pytest.mark.parametrize("module, extra, pip", [
    ("open3d", "open3d", "pip install 'splatnet[open3d]'"),
    ("gsplat", "gsplat", "pip install 'splatnet[gsplat]'"),
    ("imageio_ffmpeg", "video", "pip install 'splatnet[video]'"),
    ("matplotlib", None, "pip install matplotlib"),
])
def test_require_names_the_module_and_the_extra(monkeypatch, module, extra, pip):
    from splatnet._optional import require

    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(SplatnetError) as exc:
        require(module, "the feature", extra=extra)
    msg = str(exc.value)
    assert msg == f"the feature needs {module}: {pip}"
    assert isinstance(exc.value, ImportError)  # callers' `except ImportError` fallbacks still work


def test_require_reports_a_broken_install_differently(monkeypatch, tmp_path: Path):
    from splatnet._optional import require

    (tmp_path / "brokenmod_xyz.py").write_text("import no_such_dependency_abc\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SplatnetError) as exc:
        require("brokenmod_xyz", "the feature", extra="open3d")
    msg = str(exc.value)
    assert "needs brokenmod_xyz, which is installed but failed to import" in msg
    assert "no_such_dependency_abc" in msg and "pip install" not in msg


def test_synth_without_open3d_is_one_line(monkeypatch, tmp_path: Path, capsys):
    from splatnet.cli import main

    monkeypatch.setitem(sys.modules, "open3d", None)
    dst = tmp_path / "clip"
    assert main(["synth", str(dst), "--seed", "0", "--size", "16x24", "--cameras", "1", "--frames",
                 "1", "--no-lidar"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("splatnet synth: error: ")
    assert "needs open3d: pip install 'splatnet[open3d]'" in err[0]
    assert "ModuleNotFoundError" not in err[0] and not dst.exists()


@pytest.mark.skipif(not (SAMPLE / "clip.json").is_file(), reason="bundled example clip missing")
def test_render_without_ffmpeg_fails_before_rendering(monkeypatch, tmp_path: Path, capsys):
    from conftest import random_gaussians

    import splatnet.pipeline.preview
    from splatnet.cli import main

    random_gaussians(8, sh_degree=0).save_ply(tmp_path / "g.ply")
    calls = []
    real = splatnet.pipeline.preview.render_clip_trajectory
    monkeypatch.setattr(splatnet.pipeline.preview, "render_clip_trajectory",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    out = tmp_path / "out"
    argv = ["render", str(tmp_path / "g.ply"), "--clip", str(SAMPLE), "-o", str(out),
            "--frames", "0:1", "--size", "32x56", "--quiet"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'splatnet[video]'" in err[0] and "--no-video" in err[0]
    assert not calls and not out.exists()
    assert main([*argv, "--no-video"]) == 0  # PNGs need no ffmpeg
    assert sorted(p.name for p in out.iterdir()) == ["frames", "preview.png"]


def test_gsplat_backend_without_gsplat_names_the_extra(monkeypatch):
    # The backend's own import (splatnet.render() refuses CPU tensors for gsplat before it).
    from splatnet.rendering.gsplat_backend import _gsplat

    monkeypatch.setitem(sys.modules, "gsplat", None)
    with pytest.raises(BackendUnavailableError) as exc:
        _gsplat()
    assert str(exc.value).startswith("backend 'gsplat' needs gsplat: pip install 'splatnet[gsplat]'")


def test_benchmark_plot_without_matplotlib_is_one_line(monkeypatch, tmp_path: Path):
    spec = importlib.util.spec_from_file_location("qvt", REPO / "benchmarks" / "quality_vs_time.py")
    qvt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(qvt)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SplatnetError, match="needs matplotlib: pip install matplotlib"):
        qvt.plot([], tmp_path / "p.png")
