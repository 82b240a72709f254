"""``splatnet reconstruct`` / ``splatnet eval`` input and output rules: no overwrite without
--force (checked before any work), unique output names within a run, one clear line for a bad
--out-dir / --report / --device / --cameras / -o extension, ``CLIP/clip.json`` accepted, stage
progress on stderr. Uses the untrained model file from conftest: these tests check the plumbing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from splatnet.cli import main

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "sample_clip"
pytestmark = pytest.mark.skipif(not SAMPLE.is_dir(), reason="bundled sample clip missing")
SIZE = "64x112"


def one_error_line(err: str, command: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"splatnet {command}: error: "), err
    return lines[0]


def parse_error(capsys, argv: list[str]) -> str:
    """argparse rejects ``argv``: exit 2 and the last stderr line is its error line."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


# --- item 1 / 18 / 10: eval's report: no overwrite, checked before any work -----------------------

def test_eval_refuses_an_existing_report_before_any_work(tmp_path: Path, capsys):
    report = tmp_path / "r.json"
    report.write_text("keep me\n")
    # A missing checkpoint: if the report were checked after loading, this error would win.
    rc = main(["eval", str(SAMPLE), "--checkpoint", str(tmp_path / "no_model.safetensors"),
               "--report", str(report)])
    line = one_error_line(capsys.readouterr().err, "eval")
    assert rc == 1 and f"--report {report}" in line and "already exists" in line
    assert "--force" in line
    assert report.read_text() == "keep me\n"


def test_eval_default_report_in_cwd_is_not_overwritten_and_force_replaces_it(
        tmp_path: Path, model_file: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    default = tmp_path / "eval-sample_clip.json"
    default.write_text("keep me\n")
    args = ["eval", str(SAMPLE), "--checkpoint", str(model_file), "--size", SIZE,
            "--holdout-frames", "2", "--quiet"]
    assert main(args) == 1
    line = one_error_line(capsys.readouterr().err, "eval")
    assert "report eval-sample_clip.json: already exists" in line
    assert default.read_text() == "keep me\n"
    assert main([*args, "--force", "--json"]) == 0
    doc = json.loads(default.read_text())
    assert doc["split"]["holdout_frames"] == [2]
    assert json.loads(capsys.readouterr().out)["psnr"] == doc["psnr"]


@pytest.mark.parametrize("case", ["directory", "missing_parent"])
@pytest.mark.parametrize("force", [False, True])
def test_eval_bad_report_path_fails_up_front(tmp_path: Path, capsys, case: str, force: bool):
    if case == "directory":
        report = tmp_path / "reports"
        report.mkdir()
        expect = "is a directory"
    else:
        report = tmp_path / "nonexistent" / "x.json"
        expect = "does not exist"
    rc = main(["eval", str(SAMPLE), "--checkpoint", str(tmp_path / "no_model.safetensors"),
               "--report", str(report), *(["--force"] if force else [])])
    line = one_error_line(capsys.readouterr().err, "eval")
    assert rc == 1 and f"--report {report}" in line and expect in line, line
    assert ".tmp" not in line  # no temporary file name leaks
    assert sorted(p.name for p in tmp_path.iterdir()) == (["reports"] if case == "directory" else [])


# --- item 2: unique output names within one run ---------------------------------------------------

def test_out_dir_same_clip_names_get_distinct_outputs(tmp_path: Path, model_file: Path, capsys):
    a, b = tmp_path / "a" / "clip", tmp_path / "b" / "clip"
    shutil.copytree(SAMPLE, a)
    shutil.copytree(SAMPLE, b)
    out_dir = tmp_path / "out"
    for force in ([], ["--force"]):
        rc = main(["reconstruct", str(a), str(b), "--out-dir", str(out_dir), "--checkpoint",
                   str(model_file), "--size", SIZE, "--frames", "0:1", "--json", "--quiet", *force])
        captured = capsys.readouterr()
        assert rc == 0, captured.err
        doc = json.loads(captured.out)
        assert [(c["clip"], c["output"]) for c in doc["clips"]] == [
            (str(a), str(out_dir / "a_clip.ply")), (str(b), str(out_dir / "b_clip.ply"))]
        assert sorted(p.name for p in out_dir.iterdir()) == ["a_clip.ply", "b_clip.ply"]


def test_out_dir_renames_are_announced(tmp_path: Path, model_file: Path, capsys):
    a, b = tmp_path / "a" / "clip", tmp_path / "b" / "clip"
    shutil.copytree(SAMPLE, a)
    shutil.copytree(SAMPLE, b)
    out_dir = tmp_path / "out"
    assert main(["reconstruct", str(a), str(b), "--out-dir", str(out_dir), "--checkpoint",
                 str(model_file), "--size", SIZE, "--frames", "0:1"]) == 0
    captured = capsys.readouterr()
    assert f"{a} -> {out_dir / 'a_clip.ply'}" in captured.err
    assert f"{b} -> {out_dir / 'b_clip.ply'}" in captured.err


def test_output_names_shortest_distinguishing_parent(tmp_path: Path):
    from splatnet.cli.reconstruct import output_stems

    # Hand-worked expectations: only colliding names grow, by the fewest parent folders needed.
    assert output_stems(["/d/a/clip", "/d/b/clip", "/d/c/other"]) == ["a_clip", "b_clip", "other"]
    assert output_stems(["/p/x/a/clip", "/p/y/a/clip", "/p/c/clip"]) == [
        "x_a_clip", "y_a_clip", "c_clip"]
    assert output_stems(["/r/s/one", "/r/t/two"]) == ["one", "two"]
    # ``CLIP/clip.json`` names the directory, like CLIP does.
    assert output_stems([str(SAMPLE / "clip.json")]) == ["sample_clip"]


def test_same_clip_twice_is_refused_up_front(tmp_path: Path, capsys):
    out_dir = tmp_path / "out"
    rc = main(["reconstruct", str(SAMPLE), f"{SAMPLE}/.", "--out-dir", str(out_dir),
               "--checkpoint", str(tmp_path / "no_model.safetensors"), "--force"])
    line = one_error_line(capsys.readouterr().err, "reconstruct")
    assert rc == 1 and "twice" in line and str(SAMPLE) in line
    assert not out_dir.exists() or not any(out_dir.iterdir())


# --- item 10: --out-dir that is a file ------------------------------------------------------------

@pytest.mark.parametrize("inside", [False, True])
def test_out_dir_that_is_a_file_is_one_clear_line(tmp_path: Path, capsys, inside: bool):
    f = tmp_path / "afile"
    f.write_text("x")
    out_dir = f / "sub" if inside else f
    rc = main(["reconstruct", str(SAMPLE), "--out-dir", str(out_dir),
               "--checkpoint", str(tmp_path / "no_model.safetensors")])
    line = one_error_line(capsys.readouterr().err, "reconstruct")
    assert rc == 1 and "--out-dir" in line and "not a directory" in line and "Errno" not in line
    assert f.read_text() == "x"


# --- item 16: duplicate cameras, format vs extension ---------------------------------------------

def test_duplicate_camera_names_are_refused(tmp_path: Path, capsys):
    line = parse_error(capsys, ["reconstruct", str(SAMPLE), "-o", str(tmp_path / "x.ply"),
                                "--cameras",
                                "cam_front,cam_back,cam_front"])
    assert "--cameras" in line and "cam_front" in line and "twice" in line
    line = parse_error(capsys, ["eval", str(SAMPLE), "--holdout-cameras", "target_0,target_0",
                                "--report", str(tmp_path / "r.json")])
    assert "--holdout-cameras" in line and "target_0" in line and "twice" in line


@pytest.mark.parametrize("name,fmt", [("x.ply", "splat"), ("x.splat", "ply"), ("x.txt", None),
                                      ("x", None), ("x.txt", "ply")])
def test_output_extension_must_match_the_format(tmp_path: Path, capsys, name: str, fmt):
    out = tmp_path / name
    rc = main(["reconstruct", str(SAMPLE), "-o", str(out), "--checkpoint",
               str(tmp_path / "no_model.safetensors"), *(["--format", fmt] if fmt else [])])
    line = one_error_line(capsys.readouterr().err, "reconstruct")
    assert rc == 1 and f"-o {out}" in line and ".ply" in line and ".splat" in line, line
    assert not out.exists()


def test_format_is_inferred_from_the_extension(tmp_path: Path, model_file: Path, capsys):
    out = tmp_path / "scene.SPLAT"
    assert main(["reconstruct", str(SAMPLE), "-o", str(out), "--checkpoint", str(model_file),
                 "--size", SIZE, "--frames", "0:1", "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "splat" and out.stat().st_size == 32 * summary["gaussians"]


# --- item 22: CLIP/clip.json ----------------------------------------------------------------------

def test_clip_manifest_path_is_accepted(tmp_path: Path, model_file: Path, capsys, monkeypatch):
    manifest = SAMPLE / "clip.json"
    out_dir = tmp_path / "out"
    assert main(["reconstruct", str(manifest), "--out-dir", str(out_dir), "--checkpoint",
                 str(model_file), "--size", SIZE, "--frames", "0:1", "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["clips"][0]["output"] == str(
        out_dir / "sample_clip.ply")
    monkeypatch.chdir(tmp_path)
    assert main(["eval", str(manifest), "--checkpoint", str(model_file), "--size", SIZE,
                 "--holdout-frames", "2", "--quiet", "--json"]) == 0
    assert (tmp_path / "eval-sample_clip.json").is_file()


def test_a_file_that_is_not_a_manifest_is_still_not_a_clip(tmp_path: Path, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("hi")
    assert main(["reconstruct", str(f), "-o", str(tmp_path / "o.ply"), "--checkpoint",
                 str(tmp_path / "no_model.safetensors")]) == 1
    line = one_error_line(capsys.readouterr().err, "reconstruct")
    assert str(f) in line and "not a clip" in line


# --- --device ------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["reconstruct", "eval"])
@pytest.mark.parametrize("value", ["tpu", "mps", "cuda:x", "cuda:-1", "cpu:0x"])
def test_unknown_device_is_one_argparse_line(tmp_path: Path, capsys, command: str, value: str):
    argv = [command, str(SAMPLE), "--device", value, "--checkpoint",
            str(tmp_path / "no_model.safetensors")]
    argv += ["-o", str(tmp_path / "o.ply")] if command == "reconstruct" else [
        "--report", str(tmp_path / "r.json")]
    line = parse_error(capsys, argv)
    assert "--device" in line and repr(value) in line, line
    assert "cpu" in line and "cuda" in line and "cuda:N" in line


@pytest.mark.parametrize("command", ["reconstruct", "eval"])
def test_cuda_without_a_gpu_says_so(tmp_path: Path, capsys, command: str):
    if torch.cuda.is_available():
        pytest.skip("machine has a GPU")
    argv = [command, str(SAMPLE), "--device", "cuda", "--checkpoint",
            str(tmp_path / "no_model.safetensors")]
    argv += ["-o", str(tmp_path / "o.ply")] if command == "reconstruct" else [
        "--report", str(tmp_path / "r.json")]
    assert main(argv) == 1
    line = one_error_line(capsys.readouterr().err, command)
    assert "--device cuda" in line and "no GPU" in line, line
    assert not list(tmp_path.iterdir())


def test_library_device_check_is_clear():
    from splatnet.device import resolve_device
    from splatnet.errors import SplatnetError

    assert resolve_device("cpu") == torch.device("cpu") and resolve_device(None) == torch.device("cpu")
    for bad in ("tpu", "mps", "meta"):
        with pytest.raises(SplatnetError, match=f"device '{bad}'.*cpu, cuda or cuda:N"):
            resolve_device(bad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_index_out_of_range(tmp_path: Path, capsys):
    n = torch.cuda.device_count()
    assert main(["reconstruct", str(SAMPLE), "-o", str(tmp_path / "o.ply"), "--device",
                 f"cuda:{n}", "--checkpoint", str(tmp_path / "no_model.safetensors")]) == 1
    line = one_error_line(capsys.readouterr().err, "reconstruct")
    assert f"--device cuda:{n}" in line and f"{n} GPU" in line, line


# --- progress and H×W ----------------------------------------------------------------------------

def test_single_clip_reconstruct_shows_stages_unless_quiet(tmp_path: Path, model_file: Path,
                                                           capsys):
    args = ["reconstruct", str(SAMPLE), "--checkpoint", str(model_file), "--size", SIZE,
            "--frames", "0:1"]
    assert main([*args, "-o", str(tmp_path / "a.ply")]) == 0
    err = capsys.readouterr().err
    for stage in ("decode images", "network + post-process", "write", "done"):
        assert stage in err, err
    assert main([*args, "-o", str(tmp_path / "b.ply"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_eval_shows_stages_unless_quiet(tmp_path: Path, model_file: Path, capsys):
    args = ["eval", str(SAMPLE), "--checkpoint", str(model_file), "--size", SIZE,
            "--holdout-frames", "2"]
    assert main([*args, "--report", str(tmp_path / "a.json")]) == 0
    captured = capsys.readouterr()
    for stage in ("decode context views", "network + post-process", "score held-out views",
                  "write report", "done"):
        assert stage in captured.err, captured.err
    assert "Gaussians at 64x112" in captured.out  # H×W, as --size takes it
    assert main([*args, "--report", str(tmp_path / "b.json"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_too_small_for_the_stride_names_the_size_as_hxw():
    from splatnet.clip import Clip
    from splatnet.errors import ValidationError
    from splatnet.pipeline.feedforward import default_size

    manifest = json.loads((SAMPLE / "clip.json").read_text())
    cam = next(c for c in manifest["cameras"] if c["name"] == "cam_front")
    h, w = cam["height"], cam["width"]
    assert h != w
    with pytest.raises(ValidationError, match=f"images of {h}x{w} "):
        default_size(Clip.load(SAMPLE), ["cam_front"], 100_000)


def test_eval_no_lidar_withholds_the_lidar_and_says_so(tmp_path: Path, capsys):
    """The shipped model (LiDAR depth fusion on) on the bundled clip, which has LiDAR: the report
    says what the network was given, and withholding the LiDAR changes the reconstruction."""
    from splatnet.clip import Clip

    assert Clip.load(SAMPLE).has_lidar
    args = ["eval", str(SAMPLE), "--size", SIZE, "--holdout-frames", "2", "--quiet"]
    assert main([*args, "--report", str(tmp_path / "with.json")]) == 0
    out = capsys.readouterr().out
    assert "with the clip's LiDAR, Gaussians moved to its depth" in out
    assert main([*args, "--report", str(tmp_path / "without.json"), "--no-lidar"]) == 0
    assert "without LiDAR" in capsys.readouterr().out
    a = json.loads((tmp_path / "with.json").read_text())
    b = json.loads((tmp_path / "without.json").read_text())
    assert (a["lidar"], a["lidar_fusion"]) == (True, True)
    assert (b["lidar"], b["lidar_fusion"]) == (False, False)
    assert a["psnr"] != b["psnr"]
    assert "depth_vs_lidar" in a and "depth_vs_lidar" in b
    assert a["depth_vs_lidar"]["abs_rel"] < b["depth_vs_lidar"]["abs_rel"]


def test_eval_says_when_it_widens_the_gaussians_for_a_larger_size(tmp_path: Path, capsys):
    """The shipped model (upsample filter on) scored at the sample clip's native 256x448, twice
    its working size, says so and records the sigma; at its working size it does not."""
    import splatnet

    assert splatnet.load_model().config.upsample_filter.enabled
    assert main(["eval", str(SAMPLE), "--holdout-frames", "1",
                 "--report", str(tmp_path / "big.json")]) == 0
    out = capsys.readouterr().out
    assert "upsample: scored at 256x448, larger than the network's 128x224" in out
    rep = json.loads((tmp_path / "big.json").read_text())
    assert rep["upsample_filter"] == 0.23
    # The detail layer (on in the shipped model): said, and the Gaussians alone kept beside it.
    assert "detail: the context images' detail that the Gaussians miss" in out
    assert rep["detail"]["views"] == 12 and rep["detail"]["size"] == [256, 448]
    assert rep["psnr"] != rep["gaussians_only"]["psnr"]
    assert f"the Gaussians alone: {rep['gaussians_only']['psnr']:.2f} dB" in out
    assert main(["eval", str(SAMPLE), "--holdout-frames", "1", "--size", "128x224",
                 "--report", str(tmp_path / "small.json")]) == 0
    assert "upsample:" not in capsys.readouterr().out

