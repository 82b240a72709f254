"""Help without torch: building the parser and ``--help`` of the command and its subcommands must not
import torch (it costs seconds); ``import splatnet`` keeps its public names, loaded on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Runs in a fresh interpreter: prints whether torch got imported, even when argparse exits.
_PROBE = """
import atexit, sys
atexit.register(lambda: print('TORCH=' + str('torch' in sys.modules), file=sys.stderr))
{body}
"""


def probe(body: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-c", _PROBE.format(body=body)], capture_output=True,
                         text=True)
    assert "TORCH=" in out.stderr, out.stderr
    return out


def run_main(*argv: str) -> str:
    return (f"import runpy; sys.argv = ['splatnet', *{list(argv)!r}]; "
            "runpy.run_module('splatnet', run_name='__main__', alter_sys=True)")


def test_building_the_parser_does_not_import_torch():
    out = probe("from splatnet.cli import build_parser; build_parser()")
    assert "TORCH=False" in out.stderr, out.stderr


@pytest.mark.parametrize("argv", [
    ["--help"], ["--version"], ["reconstruct", "--help"], ["render", "--help"], ["eval", "--help"],
    ["optimize", "--help"], ["synth", "--help"], ["convert", "--help"], ["info", "--help"],
])
def test_help_does_not_import_torch(argv):
    out = probe(run_main(*argv))
    assert out.returncode == 0, out.stderr
    assert "usage: splatnet" in out.stdout or "splatnet 0" in out.stdout
    assert "TORCH=False" in out.stderr, out.stderr


def test_train_help_still_lists_the_config_keys():
    out = subprocess.run([sys.executable, "-m", "splatnet", "train", "--help"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert "usage: splatnet train" in out.stdout and "config keys" in out.stdout
    assert "optim.lr" in out.stdout or "lr" in out.stdout


def test_a_usage_error_does_not_import_torch():
    out = probe(run_main("render", "g.ply", "--clip", "c", "-o", "o", "--fps", "nan"))
    assert out.returncode == 2 and "TORCH=False" in out.stderr, out.stderr


def test_import_splatnet_is_lazy_but_complete():
    out = probe("import splatnet; print(sorted(n for n in ('Cameras', 'Gaussians', 'render') "
                "if n in vars(splatnet)))")
    assert out.stdout.strip() == "[]" and "TORCH=False" in out.stderr, out.stderr


def test_public_names_resolve_to_the_same_objects():
    import splatnet
    from splatnet.cameras import Cameras
    from splatnet.errors import BackendUnavailableError, FormatError, SplatnetError, ValidationError
    from splatnet.gaussians import Gaussians
    from splatnet.rendering import RenderOutput
    from splatnet.rendering.api import render

    assert splatnet.Cameras is Cameras and splatnet.Gaussians is Gaussians
    assert splatnet.render is render and splatnet.RenderOutput is RenderOutput
    assert (splatnet.SplatnetError, splatnet.ValidationError, splatnet.FormatError,
            splatnet.BackendUnavailableError) == (SplatnetError, ValidationError, FormatError,
                                                  BackendUnavailableError)
    names = dir(splatnet)
    for name in ("Cameras", "Gaussians", "render", "RenderOutput", "SplatnetError", "Clip",
                 "reconstruct", "__version__"):
        assert name in names and name in splatnet.__all__
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        splatnet.nope  # noqa: B018


@pytest.mark.parametrize("first", [
    "import splatnet.rendering.api",          # the subpackage first binds splatnet.render ...
    "from splatnet.rendering import reference",
    "import splatnet.pipeline.preview",
    "pass",
])
def test_splatnet_render_is_the_function_whatever_was_imported_first(first):
    body = (first + "\nimport splatnet\nfrom splatnet import render, Gaussians\n"
            "from splatnet.rendering.api import render as api_render\n"
            "print(splatnet.render is api_render, render is api_render, callable(splatnet.render),"
            " Gaussians.__name__)")
    out = probe(body)
    assert out.stdout.split() == ["True", "True", "True", "Gaussians"], out.stderr
