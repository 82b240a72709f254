"""Option checks shared by the subcommands: bounded sizes, finite floats, frame rates, --debug
after the subcommand, one spelling per idea (-o/--out, --force, H×W), and refusals that name the
CLI option, all as one line before any work starts."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from splatnet.cli import build_parser, main
from splatnet.cli._args import size_hw

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "examples" / "data" / "sample_clip"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "splatnet", *args], capture_output=True, text=True)


def subparsers() -> dict[str, argparse.ArgumentParser]:
    return dict(build_parser()._subparsers._group_actions[0].choices)


def usage_error(capsys, argv: list[str]) -> str:
    """Run ``argv``; it must be refused as a usage error (exit 2) with exactly one line."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# ----------------------------------------------------------------------------- item 7: sizes
@pytest.mark.parametrize("text", ["100000x100000", "8193x16", "16x8193", "4097x4096", "5000x4000"])
def test_size_parser_refuses_sizes_past_the_limit(text):
    # The limit: each side at most 8192 px and at most 2**24 pixels (16.8 MP) per image.
    with pytest.raises(argparse.ArgumentTypeError, match="too large"):
        size_hw(text)


@pytest.mark.parametrize("text, hw", [("4096x4096", (4096, 4096)), ("8192x2048", (8192, 2048)),
                                      ("2048x8192", (2048, 8192)), ("1216x1936", (1216, 1936))])
def test_size_parser_accepts_sizes_up_to_the_limit(text, hw):
    assert size_hw(text) == hw


@pytest.mark.parametrize("command", [
    ["render", "g.ply", "--clip", "c", "-o", "out"],
    ["reconstruct", "c", "-o", "o.ply"],
    ["eval", "c"],
    ["synth", "dst", "--seed", "0"],
])
def test_huge_size_is_one_line_before_any_work(capsys, command):
    line = usage_error(capsys, [*command, "--size", "100000x100000"])
    assert "--size" in line and "100000x100000" in line and "8192" in line


def test_preview_refuses_a_huge_size_before_allocating():
    from conftest import random_gaussians

    from splatnet.clip import Clip
    from splatnet.errors import ValidationError
    from splatnet.pipeline.preview import render_clip_trajectory

    clip = Clip.load(SAMPLE)
    with pytest.raises(ValidationError, match="size 100000x100000"):
        next(render_clip_trajectory(random_gaussians(4), clip, frames=[0], size=(100000, 100000)))


# ----------------------------------------------------------------------------- item 9: floats
@pytest.mark.parametrize("option, value", [
    ("--shift-lateral", "nan"), ("--shift-lateral", "inf"), ("--shift-lateral", "-inf"),
    ("--shift-lateral", "1e30"), ("--fps", "nan"), ("--fps", "-3"), ("--fps", "0"),
    ("--fps", "inf"), ("--fps", "1e9"), ("--fps", "abc"),
])
def test_render_refuses_bad_floats_up_front(tmp_path: Path, capsys, option, value):
    out = tmp_path / "out"
    # OPTION=VALUE: argparse reads a separate "-inf" as an option, not as a value.
    line = usage_error(capsys, ["render", str(tmp_path / "g.ply"), "--clip", str(SAMPLE),
                                "-o", str(out), f"{option}={value}"])
    assert option in line and value in line
    assert not out.exists()


def test_render_accepts_sane_floats():
    p = subparsers()["render"]
    args = p.parse_args(["g.ply", "--clip", "c", "-o", "o", "--fps", "0.5", "--shift-lateral", "-2.5"])
    assert args.fps == 0.5 and args.shift_lateral == -2.5
    assert p.parse_args(["g.ply", "--clip", "c", "-o", "o", "--fps", "240"]).fps == 240.0


@pytest.mark.parametrize("argv", [
    ["synth", "d", "--seed", "0", "--frame-interval", "nan"],
    ["optimize", "c", "-o", "o.ply", "--downscale", "nan"],
])
def test_other_float_options_are_finite(capsys, argv):
    line = usage_error(capsys, argv)
    assert argv[-2] in line and "nan" in line


# ----------------------------------------------------------------------------- item 21: --force
def test_synth_into_an_existing_folder_says_force(tmp_path: Path, capsys):
    dst = tmp_path / "clip"
    dst.mkdir()
    (dst / "keep.txt").write_text("precious")
    assert main(["synth", str(dst), "--seed", "0", "--size", "16x24", "--cameras", "1",
                 "--frames", "1", "--no-lidar"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "--force" in err and "overwrite=True" not in err and str(dst) in err
    assert (dst / "keep.txt").read_text() == "precious"


def test_synth_count_checks_every_destination_before_writing_any(tmp_path: Path, capsys):
    (tmp_path / "many" / "seed_000004").mkdir(parents=True)
    assert main(["synth", str(tmp_path / "many"), "--seed", "3", "--count", "2", "--cameras", "1",
                 "--frames", "1", "--size", "16x24", "--no-lidar"]) == 1
    err = capsys.readouterr().err
    assert "seed_000004" in err and "--force" in err
    assert not (tmp_path / "many" / "seed_000003").exists()  # nothing generated before refusing


def test_convert_into_an_existing_folder_says_force(tmp_path: Path, capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    assert main(["convert", "nerfstudio", str(src), str(dst)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--force" in err and "overwrite=True" not in err


def test_convert_spells_it_force_and_keeps_overwrite_hidden():
    p = subparsers()["convert"]
    assert p.parse_args(["dgp", "a", "b", "--force"]).force is True
    assert p.parse_args(["dgp", "a", "b", "--overwrite"]).force is True  # deprecated alias
    assert p.parse_args(["dgp", "a", "b"]).force is False
    assert "--force" in p.format_help() and "--overwrite" not in p.format_help()


# ----------------------------------------------------------------------------- item 23: --debug
def test_every_subcommand_accepts_debug_after_it():
    for name, p in subparsers().items():
        assert any("--debug" in a.option_strings for a in p._actions), name


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback_wherever_it_is_placed(tmp_path: Path, where):
    bad = str(tmp_path / "missing.ply")
    argv = ["--debug", "info", bad] if where == "before" else ["info", bad, "--debug"]
    out = run_cli(*argv)
    assert out.returncode != 0 and "Traceback" in out.stderr and "unrecognized" not in out.stderr


def test_debug_after_reconstruct_is_recognised():
    args = build_parser().parse_args(["reconstruct", "c", "-o", "o.ply", "--debug"])
    assert args.debug is True
    args = build_parser().parse_args(["--debug", "reconstruct", "c", "-o", "o.ply"])
    assert args.debug is True  # the subcommand's absent flag does not reset the global one
    assert build_parser().parse_args(["reconstruct", "c", "-o", "o.ply"]).debug is False


# ----------------------------------------------------------------------------- consistency
def test_output_option_is_spelled_out_everywhere():
    for name, p in subparsers().items():
        text = p.format_help()
        assert "--output " not in text and "--overwrite" not in text, name
    opt = subparsers()["optimize"]
    for flag in ("-o", "--out", "--output"):  # --output: the old spelling, kept as a hidden alias
        assert opt.parse_args(["clip", flag, "x.ply"]).out == "x.ply"


def test_optimize_still_requires_an_output(capsys):
    line = usage_error(capsys, ["optimize", "clip"])
    assert "-o/--out" in line


def test_usage_errors_are_one_line_with_a_pointer_to_help(capsys):
    line = usage_error(capsys, ["render", "g.ply"])
    assert line.startswith("splatnet render: error:") and "--help" in line


@pytest.mark.skipif(not (SAMPLE / "clip.json").is_file(), reason="bundled example clip missing")
def test_optimize_announces_iterations_up_front_and_prints_sizes_as_hxw(tmp_path: Path, capsys):
    from splatnet.clip import Clip

    cam = Clip.load(SAMPLE).camera(Clip.load(SAMPLE).rig_camera_names[0])
    # Default iteration count: announced before the run starts (here it fails at once).
    assert main(["optimize", str(SAMPLE), "-o", str(tmp_path / "a.ply"),
                 "--holdout-cameras", "nope"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "7000 iterations" in err[0] and "default" in err[0]
    assert "--iterations" in err[0] and "unknown camera" in err[1]
    # An explicit count is announced too, and --quiet silences it.
    assert main(["optimize", str(SAMPLE), "-o", str(tmp_path / "b.ply"), "--iterations", "2",
                 "--downscale", "8", "--max-gaussians", "200", "--init", "random"]) == 0
    cap = capsys.readouterr()
    assert "2 iterations" in cap.err and "default" not in cap.err.splitlines()[0]
    m = re.search(r"views of (\d+)x(\d+)", cap.out)
    assert m, cap.out
    assert (int(m[1]), int(m[2])) == (round(cam.height / 8), round(cam.width / 8))  # H x W
    assert main(["optimize", str(SAMPLE), "-o", str(tmp_path / "c.ply"), "--iterations", "0",
                 "--downscale", "8", "--max-gaussians", "200", "--init", "random", "--quiet"]) == 0
    assert "iterations" not in capsys.readouterr().err
