"""``splatnet batch reconstruct --engine ray`` on a local Ray cluster of 2 CPUs (skipped without
Ray): 12 clips with 2 broken ones, resume, outputs equal to sequential ``splatnet reconstruct``,
an actor killed mid-clip. Every test leaves Ray shut down."""

from __future__ import annotations

import json
import os
import signal
import threading

import pytest
from batch import fixtures
from batch.helpers import BROKEN, KILL_AFTER_S, manifest_with_slow_clip, read_lines

from splatnet.batch import BatchSpec, run_batch
from splatnet.cli import main

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only (see RayPool)
ray = pytest.importorskip("ray")

fleet, street_clips = fixtures.fleet, fixtures.street_clips  # the clips (batch/fixtures.py)


def test_ray_engine_starts_and_stops_its_own_cluster(fleet, model_file, tmp_path):
    """First in the module: before the shared cluster below exists."""
    assert not ray.is_initialized()
    spec = BatchSpec("reconstruct", checkpoint=str(model_file), threads=1)
    try:
        result = run_batch([str(fleet["good"][0])], tmp_path / "out", spec, engine="ray",
                           workers=1, progress=False)
    finally:
        started = ray.is_initialized()
        ray.shutdown()
    assert not started and result.failed == 0
    assert (tmp_path / "out" / f"{fleet['good'][0].name}.ply").is_file()


@pytest.fixture(scope="module")
def ray_cluster():
    """One local cluster for the module's tests (run_batch joins it rather than starting one)."""
    assert not ray.is_initialized()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=128 << 20)
    try:
        yield
    finally:
        ray.shutdown()


def test_ray_twelve_clips_resume_and_equal_outputs(ray_cluster, fleet, model_file, tmp_path,
                                                   one_thread, capsys):
    out = tmp_path / "out"
    args = ["batch", "reconstruct", str(fleet["manifest"]), "--out-dir", str(out), "--engine",
            "ray", "--workers", "2", "--threads", "1", "--checkpoint", str(model_file), "--quiet"]
    assert main(args) == 1
    lines = read_lines(out)
    assert len(lines) == 12
    failed = {os.path.basename(x["clip"]): x["error"] for x in lines if x["status"] == "failed"}
    assert set(failed) == set(BROKEN)
    assert "clip.json" in failed["c04"] and "000001.jpg" in failed["c09"]
    assert sorted(p.name for p in out.glob("*.ply")) == sorted(f"{c.name}.ply" for c in fleet["good"])
    assert len({x["worker"] for x in lines if x["status"] == "ok"}) == 2  # both actors worked
    # a second run re-does nothing
    before = (out / "results.jsonl").read_bytes()
    assert main(args) == 1
    assert (out / "results.jsonl").read_bytes() == before
    run = json.loads((out / "summary.json").read_text())["this_run"]
    assert (run["processed"], run["skipped_complete"]) == (0, 10)
    # the outputs are those of sequential `splatnet reconstruct` (1 torch thread, as each actor)
    ref = tmp_path / "ref"
    good = [str(c) for c in fleet["good"][:3]]
    assert main(["reconstruct", *good, "--out-dir", str(ref), "--checkpoint", str(model_file),
                 "--quiet", "--json"]) == 0
    for c in fleet["good"][:3]:
        assert (out / f"{c.name}.ply").read_bytes() == (ref / f"{c.name}.ply").read_bytes()
    capsys.readouterr()


def test_ray_killed_actor_costs_one_retry_of_its_clip(ray_cluster, fleet, model_file, tmp_path):
    clips = [str(c) for c in fleet["good"][:4]]
    victim = clips[2]
    killed: list[int] = []

    def on_dispatch(task, info):
        if task.clip == victim and not killed:
            killed.append(info["pid"])
            threading.Timer(KILL_AFTER_S, os.kill, (info["pid"], signal.SIGKILL)).start()

    spec = BatchSpec("reconstruct", checkpoint=str(model_file), threads=1)
    manifest = manifest_with_slow_clip(tmp_path / "clips.jsonl", clips, victim)
    result = run_batch([str(manifest)], tmp_path / "out", spec, engine="ray", workers=2,
                       progress=False, on_dispatch=on_dispatch)
    assert killed and result.failed == 0
    all_lines = read_lines(tmp_path / "out")
    lines = {x["clip"]: x for x in all_lines}
    assert len(all_lines) == 4
    assert lines[victim]["attempts"] == 2
    assert not lines[victim]["worker"].endswith(f":{killed[0]}")  # Ray restarted the actor
    assert all(x["attempts"] == 1 for c, x in lines.items() if c != victim)
    assert ray.is_initialized()  # a cluster the caller started is left running for the caller
