"""The splatnet command: help on every subcommand, info output, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import random_gaussians

from splatnet.cli import COMMANDS, build_parser, main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "splatnet", *args], capture_output=True, text=True)


def test_every_subcommand_has_help(capsys):
    parser = build_parser()
    names = [a for a in parser._subparsers._group_actions[0].choices]
    assert len(names) == len(COMMANDS)
    for name in names:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        assert "usage: splatnet " + name in capsys.readouterr().out


def test_info_prints_statistics(tmp_path: Path):
    g = random_gaussians(100, sh_degree=2)
    g.save_ply(tmp_path / "g.ply")
    out = run_cli("info", str(tmp_path / "g.ply"))
    assert out.returncode == 0, out.stderr
    assert "gaussians:   100" in out.stdout and "sh degree:   2" in out.stdout
    js = json.loads(run_cli("info", "--json", str(tmp_path / "g.ply")).stdout)
    assert js["count"] == 100 and js["sh_degree"] == 2
    assert js["bounds_min"][0] == pytest.approx(float(g.means[:, 0].min()))
    assert js["opacity"]["max"] == pytest.approx(float(g.opacities.max()), rel=1e-5)


@pytest.mark.parametrize("content", [None, b"ply\nformat binary_little_endian 1.0\nelem"])
def test_bad_input_is_one_line_without_traceback(tmp_path: Path, content):
    path = tmp_path / "bad.ply"
    if content is not None:
        path.write_bytes(content)
    out = run_cli("info", str(path))
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert lines[0].startswith("splatnet info: error: ") and str(path) in lines[0]
    debug = run_cli("--debug", "info", str(path))
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_no_command_prints_usage():
    out = run_cli()
    assert out.returncode == 2 and "usage: splatnet" in out.stderr
