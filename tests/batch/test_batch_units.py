"""The batch's parts without worker processes: INPUTS and manifests, output names, the results
file, output completeness checks and the scheduler's retry policy (with a scripted pool)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from splatnet.batch.engines import Event, Pool, schedule
from splatnet.batch.inputs import build_tasks, expand_inputs
from splatnet.batch.job import BatchSpec, ClipTask
from splatnet.batch.outputs import output_problem
from splatnet.batch.results import ResultsLog, open_results
from splatnet.errors import FormatError, ValidationError


def _clip(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "clip.json").write_text("{}")
    return path


# ------------------------------------------------------------------------------ inputs
def test_manifest_lines_paths_and_options(tmp_path):
    a, b = _clip(tmp_path / "logs" / "a"), _clip(tmp_path / "logs" / "b")
    m = tmp_path / "list.jsonl"
    m.write_text("# fleet\n\nlogs/a\n"
                 '{"clip": "logs/b", "frames": "0:2", "cameras": "f,l", "size": "32x56"}\n'
                 f'{{"clip": "{a}", "frames": [0, 2], "size": [16, 24]}}\n')
    entries = expand_inputs([str(m)], "reconstruct")
    assert [Path(e[0]) for e in entries] == [a, b, a]
    assert entries[0][1] == {}
    assert entries[1][1] == {"frames": "0:2", "cameras": ["f", "l"], "size": [32, 56]}
    assert entries[2][1] == {"frames": [0, 2], "size": [16, 24]}
    assert entries[1][2] == f"{m} line 4"


@pytest.mark.parametrize("line, words", [
    ('{"clip": "x", "fram": [0]}', ["line 1", "unknown option 'fram'", "frames"]),
    ('{"clip": "x", "size": "0x5"}', ["line 1", "size"]),
    ('{"clip": "x", "size": "99999x5"}', ["line 1", "size"]),
    ('{"clip": "x", "holdout_frames": [1]}', ["line 1", "holdout_frames"]),
    ('{"frames": [0]}', ["line 1", '"clip"']),
    ('{"clip": "x", ', ["line 1", "not a JSON object"]),
    ('{"clip": "x", "frames": [0, 0]}', ["line 1", "twice"]),
])
def test_manifest_errors_name_the_line_and_the_key(tmp_path, line, words):
    m = tmp_path / "list.txt"
    m.write_text(line + "\n")
    with pytest.raises((ValidationError, FormatError)) as exc:
        expand_inputs([str(m)], "reconstruct")
    assert str(m) in str(exc.value) and all(w in str(exc.value) for w in words), str(exc.value)


def test_eval_options_and_binary_or_empty_manifests(tmp_path):
    m = tmp_path / "e.jsonl"
    m.write_text('{"clip": "c", "holdout_cameras": ["x"], "network_size": "16x24"}\n')
    assert expand_inputs([str(m)], "eval")[0][1] == {"holdout_cameras": ["x"],
                                                     "network_size": [16, 24]}
    with pytest.raises(ValidationError, match="exclude each other"):
        m.write_text('{"clip": "c", "holdout_cameras": ["x"], "holdout_frames": [1]}\n')
        expand_inputs([str(m)], "eval")
    ply = tmp_path / "x.ply"
    ply.write_bytes(b"ply\n\xff\xfe\x00")
    with pytest.raises(FormatError, match="not UTF-8"):
        expand_inputs([str(ply)], "reconstruct")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(ValidationError, match="lists no clip"):
        expand_inputs([str(empty)], "reconstruct")


def test_globs_take_clips_only_and_must_match(tmp_path):
    a, b = _clip(tmp_path / "d" / "x" / "seg1"), _clip(tmp_path / "d" / "y" / "seg1")
    (tmp_path / "d" / "notes").mkdir()
    entries = expand_inputs([str(tmp_path / "d" / "**" / "seg*")], "reconstruct")
    assert [Path(e[0]) for e in entries] == [a, b]
    with pytest.raises(ValidationError, match="matches no clip"):  # x, y, notes: not clips
        expand_inputs([str(tmp_path / "d" / "*")], "reconstruct")
    # names: clips of the same folder name get their parents in front
    spec = BatchSpec("reconstruct", format="splat")
    tasks = build_tasks(entries, spec, tmp_path / "out")
    assert [Path(t.output).name for t in tasks] == ["x_seg1.splat", "y_seg1.splat"]
    with pytest.raises(ValidationError, match="same clip given twice"):
        build_tasks(entries + entries[:1], spec, tmp_path / "out")
    results = _clip(tmp_path / "summary")
    with pytest.raises(ValidationError, match="keeps for itself"):
        build_tasks([(str(results), {}, "argument 1")], BatchSpec("eval", format="json"),
                    tmp_path / "out")


def test_spec_checks_its_fields():
    with pytest.raises(ValidationError, match="format"):
        BatchSpec("eval", format="ply")
    with pytest.raises(ValidationError, match="refine"):
        BatchSpec("reconstruct", refine=-1)
    with pytest.raises(ValidationError, match="unknown option 'holdout_frames'"):
        BatchSpec("reconstruct", defaults={"holdout_frames": [1]})
    t = ClipTask(0, "/c", "/o", {"holdout_frames": [2]})
    assert t.effective_options(BatchSpec("eval", format="json",
                                         defaults={"holdout_cameras": ["x"], "size": [8, 8]})
                               ) == {"holdout_frames": [2], "size": [8, 8]}


# ------------------------------------------------------------------------------ results file
def test_results_file_drops_a_torn_last_line_and_refuses_a_bad_one(tmp_path):
    log = ResultsLog(tmp_path / "results.jsonl")
    log.append({"clip": "/a", "status": "failed"})
    log.append({"clip": "/b", "status": "ok"})
    log.append({"clip": "/a", "status": "ok"})
    log.close()
    with open(tmp_path / "results.jsonl", "a") as f:
        f.write('{"clip": "/c", "sta')  # the driver died mid-write
    assert {k: v["status"] for k, v in log.read().items()} == {"/a": "ok", "/b": "ok"}
    assert (tmp_path / "results.jsonl").read_text().endswith('"ok"}\n')  # the torn tail is cut
    log.append({"clip": "/c", "status": "ok"})
    log.close()
    assert set(log.read()) == {"/a", "/b", "/c"}
    (tmp_path / "results.jsonl").write_text('{"clip": "/a"}\nnot json\n{"clip": "/b"}\n')
    with pytest.raises(FormatError, match="line 2"):
        log.read()


def test_one_run_at_a_time_per_out_dir(tmp_path):
    with open_results(tmp_path):
        with pytest.raises(ValidationError, match=f"pid {os.getpid()}"):
            with open_results(tmp_path):
                pass
    with open_results(tmp_path):  # released
        pass


# ------------------------------------------------------------------------------ outputs
def test_output_checks_read_the_file(tmp_path):
    import torch

    from splatnet import Gaussians

    r = torch.Generator().manual_seed(0)
    g = Gaussians(torch.randn(50, 3, generator=r), torch.randn(50, 4, generator=r),
                  torch.rand(50, 3, generator=r) + 0.01, torch.rand(50, generator=r) * 0.9 + 0.05,
                  torch.randn(50, 4, 3, generator=r) * 0.2)
    ply, splat = tmp_path / "a.ply", tmp_path / "a.splat"
    g.save_ply(ply)
    g.save_splat(splat)
    line = {"output": str(ply), "format": "ply", "gaussians": 50, "bytes": ply.stat().st_size}
    assert output_problem(line) is None
    assert "says" in output_problem({**line, "bytes": line["bytes"] + 1})
    assert "header" in output_problem({**line, "gaussians": 49})
    with open(ply, "r+b") as f:  # same size, other count in the header: not splatnet's file
        f.seek(ply.read_bytes().index(b"vertex 50"))
        f.write(b"vertex 51")
    assert "header" in output_problem(line)
    ply.unlink()
    assert output_problem(line) == "missing"
    sline = {"output": str(splat), "format": "splat", "gaussians": 50, "bytes": 32 * 50}
    assert output_problem(sline) is None
    assert "take" in output_problem({**sline, "gaussians": 49, "bytes": 32 * 50})
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"psnr": 21.5}))
    rline = {"output": str(report), "format": "json", "metrics": {"psnr": 21.5},
             "bytes": report.stat().st_size}
    assert output_problem(rline) is None
    assert "PSNR" in output_problem({**rline, "metrics": {"psnr": 20.0}})


# ------------------------------------------------------------------------------ scheduler
class ScriptedPool(Pool):
    """Workers that finish each clip at once, except where ``deaths`` says a worker dies on a clip
    (``{clip index: times}``); records what ran where."""

    def __init__(self, size: int, deaths: dict[int, int]):
        self.size, self.deaths, self.log = size, dict(deaths), []
        self.queue: list[Event] = []
        self.restarts = 0

    def submit(self, worker, task, upcoming):
        self.log.append((worker, task.index, None if upcoming is None else upcoming.index))
        if self.deaths.get(task.index, 0) > 0:
            self.deaths[task.index] -= 1
            self.queue.append(Event(worker, reason="worker process 1 was killed by SIGKILL"))
        else:
            self.queue.append(Event(worker, line={"status": "ok"}))

    def wait(self, timeout):
        out, self.queue = self.queue[:1], self.queue[1:]
        return out

    def restart(self, worker):
        self.restarts += 1
        return {"name": f"w{worker}"}


def _tasks(n: int) -> list[ClipTask]:
    return [ClipTask(i, f"/c{i}", f"/o{i}") for i in range(n)]


def test_schedule_retries_only_the_dead_workers_clip():
    pool = ScriptedPool(2, deaths={3: 1, 5: 5})
    results = {}
    schedule(pool, _tasks(7), retries=2, on_result=lambda t, x: results.__setitem__(t.index, x))
    assert sorted(results) == list(range(7))
    assert results[3] == {"status": "ok", "attempts": 2}
    assert results[5]["status"] == "failed" and results[5]["attempts"] == 3
    assert "SIGKILL" in results[5]["error"] and "3 attempts" in results[5]["error"]
    assert all(results[i]["attempts"] == 1 for i in (0, 1, 2, 4, 6))
    ran = [i for _, i, _ in pool.log]
    assert sorted(ran) == sorted([0, 1, 2, 3, 3, 4, 5, 5, 5, 6])  # nothing else ran twice
    assert pool.restarts == 4
    # each worker holds its clip and its next one (decoded ahead): 0 then 1, 2 then 3
    assert pool.log[:3] == [(0, 0, 1), (1, 2, 3), (0, 1, 4)]
