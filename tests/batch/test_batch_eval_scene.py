"""``splatnet batch eval`` (per-clip reports as ``splatnet eval`` writes them, metrics aggregated
over the clips) and ``splatnet batch reconstruct --format scene`` (the scenes ``splatnet
reconstruct -o NAME.scene`` writes; a damaged one is found and made again)."""

from __future__ import annotations

import json
import statistics

import torch
from batch import fixtures
from batch.helpers import read_lines

from splatnet.cli import main

fleet, street_clips = fixtures.fleet, fixtures.street_clips  # the clips (batch/fixtures.py)


def test_batch_eval_reports_and_aggregates(fleet, model_file, tmp_path, one_thread, capsys):
    clips = fleet["good"][:3]
    m = tmp_path / "list.jsonl"
    m.write_text(f'{{"clip": "{clips[0]}", "holdout_frames": [0]}}\n'
                 + "".join(f"{c}\n" for c in clips[1:]))
    out = tmp_path / "out"
    assert main(["batch", "eval", str(m), "--out-dir", str(out), "--checkpoint", str(model_file),
                 "--threads", "1", "--quiet"]) == 0
    reports = {c.name: json.loads((out / f"{c.name}.json").read_text()) for c in clips}
    assert reports[clips[0].name]["split"]["holdout_frames"] == [0]  # the manifest's option
    assert reports[clips[1].name]["split"]["holdout_frames"] == [1]  # the default: middle frame
    # each report is the one `splatnet eval` writes for that clip and split
    ref = tmp_path / "ref.json"
    assert main(["eval", str(clips[1]), "--checkpoint", str(model_file), "--report", str(ref),
                 "--quiet", "--json"]) == 0
    want = json.loads(ref.read_text())
    got = reports[clips[1].name]
    for key in ("psnr", "ssim", "gaussians", "split", "per_view", "depth_vs_lidar"):
        assert got[key] == want[key], key
    # the summary aggregates the reports' figures
    summary = json.loads((out / "summary.json").read_text())
    psnrs = [r["psnr"] for r in reports.values()]
    agg = summary["metrics"]["psnr"]
    assert agg["clips"] == 3 and abs(agg["mean"] - statistics.fmean(psnrs)) < 1e-9
    assert agg["median"] == statistics.median(psnrs) and agg["min"] == min(psnrs)
    assert summary["worst"][0]["psnr"] == min(psnrs)
    assert summary["metrics"]["depth_abs_rel"]["clips"] == 3
    md = (out / "summary.md").read_text()
    assert "| psnr |" in md and "Worst clips by PSNR" in md
    assert "psnr" in capsys.readouterr().out


def test_batch_scene_outputs_equal_reconstruct_and_damage_is_redone(fleet, model_file, tmp_path,
                                                                     one_thread):
    from splatnet.scene import Scene

    clips = fleet["good"][:2]
    out = tmp_path / "out"
    args = ["batch", "reconstruct", *map(str, clips), "--out-dir", str(out), "--format", "scene",
            "--checkpoint", str(model_file), "--threads", "1", "--quiet"]
    assert main(args) == 0
    ref = tmp_path / "ref.scene"
    assert main(["reconstruct", str(clips[0]), "-o", str(ref), "--checkpoint", str(model_file),
                 "--quiet", "--json"]) == 0
    a, b = Scene.load(out / f"{clips[0].name}.scene"), Scene.load(ref)
    assert sorted(a.actors) == sorted(b.actors) and a.num_gaussians == b.num_gaussians
    for k, v in b.background.fields().items():
        assert torch.equal(a.background.fields()[k], v), k
    for i in b.actors:
        assert torch.equal(a.actors[i].gaussians.means, b.actors[i].gaussians.means)
    # a scene cut short is found (its safetensors header no longer fits the file) and made again
    path = out / f"{clips[1].name}.scene"
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    assert main(args) == 0
    lines = read_lines(out)
    assert len(lines) == 3 and lines[-1]["clip"] == str(clips[1])
    assert Scene.load(path).num_gaussians == lines[-1]["gaussians"]
