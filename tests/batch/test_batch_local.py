"""``splatnet batch reconstruct`` on local worker processes: 12 clips with 2 broken ones, resume,
outputs equal to sequential ``splatnet reconstruct``, a worker killed mid-clip, damaged outputs,
--retry-failed and --force."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
from pathlib import Path

import pytest
import torch
from batch import fixtures
from batch.helpers import BROKEN, KILL_AFTER_S, SLOW_SIZE, manifest_with_slow_clip, read_lines

from splatnet.batch import BatchSpec, run_batch
from splatnet.batch.outputs import output_problem
from splatnet.cli import main

fleet, street_clips = fixtures.fleet, fixtures.street_clips  # the clips (batch/fixtures.py)


@pytest.fixture(scope="module")
def first_run(fleet, model_file, tmp_path_factory):
    """The fleet's manifest through 2 local workers, as the command line runs it."""
    out = tmp_path_factory.mktemp("batch") / "out"
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "splatnet", "batch", "reconstruct",
                          str(fleet["manifest"]), "--out-dir", str(out), "--workers", "2",
                          "--threads", "1", "--checkpoint", str(model_file), "--quiet"],
                         capture_output=True, text=True, timeout=600)
    return {"out": out, "rc": res.returncode, "stdout": res.stdout, "stderr": res.stderr}


def test_twelve_clips_two_broken(first_run, fleet):
    out = first_run["out"]
    assert first_run["rc"] == 1, first_run["stderr"]
    assert sorted(p.name for p in out.glob("*.ply")) == sorted(f"{c.name}.ply" for c in fleet["good"])
    lines = read_lines(out)
    assert len(lines) == 12 and len({x["clip"] for x in lines}) == 12
    failed = {Path(x["clip"]).name: x for x in lines if x["status"] == "failed"}
    assert set(failed) == set(BROKEN)
    # each failure names the problem: the file that is bad
    assert "clip.json" in failed["c04"]["error"] and "c04" in failed["c04"]["error"]
    assert "000001.jpg" in failed["c09"]["error"]
    for x in lines:
        if x["status"] == "ok":
            assert x["gaussians"] > 0 and x["bytes"] == os.path.getsize(x["output"])
            assert x["attempts"] == 1 and set(x["timings"]) >= {"load", "network", "write"}
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["clips"], summary["ok"], summary["failed"]) == (12, 10, 2)
    assert summary["this_run"]["clips_per_minute"] > 0
    assert "12 clips: 10 ok, 2 failed" in first_run["stdout"]


def test_second_run_redoes_nothing(first_run, fleet, model_file, capsys):
    out = first_run["out"]
    before = (out / "results.jsonl").read_bytes()
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.ply")}
    rc = main(["batch", "reconstruct", str(fleet["manifest"]), "--out-dir", str(out),
               "--workers", "2", "--threads", "1", "--checkpoint", str(model_file), "--quiet"])
    assert rc == 1  # the two broken clips are still failed (not retried without --retry-failed)
    assert (out / "results.jsonl").read_bytes() == before
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.ply")} == mtimes
    summary = json.loads((out / "summary.json").read_text())
    run = summary["this_run"]
    assert (run["processed"], run["skipped_complete"], run["failed_earlier_not_retried"]) == (0, 10, 2)
    assert "failed earlier, not retried" in capsys.readouterr().out


def test_outputs_equal_sequential_reconstruct(first_run, fleet, model_file, tmp_path, one_thread):
    """Each worker ran on 1 torch thread (--threads 1), so does this reference."""
    clips = [str(c) for c in fleet["good"][:3]]
    assert main(["reconstruct", *clips, "--out-dir", str(tmp_path), "--checkpoint",
                 str(model_file), "--quiet", "--json"]) == 0
    for c in fleet["good"][:3]:
        ref = (tmp_path / f"{c.name}.ply").read_bytes()
        assert (first_run["out"] / f"{c.name}.ply").read_bytes() == ref, c.name


def test_killed_worker_costs_one_retry_of_its_clip(fleet, model_file, tmp_path):
    clips = [str(c) for c in fleet["good"][:4]]
    victim = clips[1]
    killed: list[int] = []

    def on_dispatch(task, info):
        if task.clip == victim and not killed:  # the first time it goes to a worker
            killed.append(info["pid"])
            threading.Timer(KILL_AFTER_S, os.kill, (info["pid"], signal.SIGKILL)).start()

    spec = BatchSpec("reconstruct", checkpoint=str(model_file), threads=1)
    manifest = manifest_with_slow_clip(tmp_path / "clips.jsonl", clips, victim)
    result = run_batch([str(manifest)], tmp_path / "out", spec, workers=2, progress=False,
                       on_dispatch=on_dispatch)
    assert killed and result.failed == 0
    lines = {x["clip"]: x for x in read_lines(tmp_path / "out")}
    assert len(read_lines(tmp_path / "out")) == 4  # one line per clip: nothing else redone
    assert lines[victim]["attempts"] == 2
    assert not lines[victim]["worker"].endswith(f":{killed[0]}")
    assert all(x["attempts"] == 1 for c, x in lines.items() if c != victim)
    assert result.summary["this_run"]["retried_after_worker_death"] == 1
    # the retried clip's output is whole (checked as a resumed run checks it)
    assert output_problem(lines[victim]) is None and lines[victim]["size"] == SLOW_SIZE


def test_a_clip_that_kills_every_worker_fails_after_its_retries(fleet, model_file, tmp_path):
    clips = [str(c) for c in fleet["good"][:2]]

    def on_dispatch(task, info):
        if task.clip == clips[0]:
            os.kill(info["pid"], signal.SIGKILL)

    spec = BatchSpec("reconstruct", checkpoint=str(model_file), threads=1)
    result = run_batch(clips, tmp_path / "out", spec, workers=1, retries=1, progress=False,
                       on_dispatch=on_dispatch)
    lines = {x["clip"]: x for x in read_lines(tmp_path / "out")}
    assert lines[clips[0]]["status"] == "failed" and lines[clips[0]]["attempts"] == 2
    assert "killed by SIGKILL" in lines[clips[0]]["error"]
    assert lines[clips[1]]["status"] == "ok" and result.failed == 1


def test_damaged_output_retry_failed_and_force(fleet, model_file, tmp_path, capsys):
    logs = tmp_path / "logs"
    for name in ("c00", "c04"):
        shutil.copytree(fleet["root"] / "logs" / name, logs / name)
    out = tmp_path / "out"
    args = ["batch", "reconstruct", str(logs / "*"), "--out-dir", str(out), "--checkpoint",
            str(model_file), "--quiet", "--threads", "1"]
    assert main(args) == 1
    assert [x["status"] for x in read_lines(out)] == ["ok", "failed"]
    # an output cut short (not by splatnet: its writes are atomic) is found and made again
    ply = out / "c00.ply"
    good = ply.read_bytes()
    ply.write_bytes(good[:-100])
    shutil.copy(fleet["root"] / "logs" / "c01" / "clip.json", logs / "c04" / "clip.json")  # repaired
    assert main(args) == 1  # c04 stays failed: its earlier failure is not retried by default
    assert ply.read_bytes() == good
    assert main([*args, "--retry-failed"]) == 0
    assert [x["status"] for x in read_lines(out)][-1] == "ok" and (out / "c04.ply").is_file()
    capsys.readouterr()
    # another model: outputs are not this model's, so they are not replaced without --force
    other = tmp_path / "other"
    from splatnet.io.checkpoint import save_model
    from splatnet.models import SplatNet

    torch.manual_seed(1)
    save_model(other, SplatNet())
    args2 = [*args[:5], "--checkpoint", f"{other}.safetensors", *args[7:]]
    assert main(args2) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already exists" in err and "model" in err and "--force" in err
    assert ply.read_bytes() == good
    assert main([*args2, "--force"]) == 0
    assert ply.read_bytes() != good


def test_bad_options_are_one_line_before_any_work(fleet, model_file, tmp_path, capsys):
    clip = str(fleet["good"][0])
    cases = [
        (["--engine", "local", "--address", "auto"], "--address"),
        (["--gpus-per-task", "1"], "--gpus-per-task"),
        (["--workers", "0"], "--workers"),
        (["--format", "ply", "--no-tracks"], "--no-tracks"),
    ]
    for extra, word in cases:
        rc = main(["batch", "reconstruct", clip, "--out-dir", str(tmp_path / "o"), "--checkpoint",
                   str(model_file), "--quiet", *extra])
        err = capsys.readouterr().err.strip()
        assert rc == 1 and err.count("\n") == 0 and word in err, (extra, err)
    file = tmp_path / "f"
    file.write_text("x")
    assert main(["batch", "eval", clip, "--out-dir", str(file), "--quiet"]) == 1
    assert "is a file" in capsys.readouterr().err
    assert not list(tmp_path.glob("o/*.ply"))
