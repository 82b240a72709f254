"""The ego's own body in its cameras (splatnet.pipeline.ego): the band fit against brute force,
the estimate against the synthetic generator's own hood masks (an independent reference), no
masks where nothing can tell (a parked ego, no LiDAR, no hood), the layer drawn back over renders
of the same camera, and on the real DGP clip (no masks in that data) held-out scores that improve.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from splatnet.clip import Clip
from splatnet.errors import ValidationError
from splatnet.pipeline.ego import (
    OBJECT_MARGIN,
    PairEvidence,
    bottom_band,
    close_gaps,
    estimate_ego_masks,
    pair_evidence,
    pair_of_frames,
)
from splatnet.pipeline.feedforward import prepare_inputs
from splatnet.scene.layers import EgoLayer, masks_for_views

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
DGP = DATA / "dgp_scene"
SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "sample_clip"
SIZE = (128, 224)
# Seeds whose ego moves 1.6 and 2.6 m between frames 0 and 2 (the estimate needs motion).
HOOD_SEEDS = (11, 15)


def _brute_band(evidence: torch.Tensor, prior: float, smooth: float) -> float:
    h, w = evidence.shape
    s = evidence.double() - prior
    best = -float("inf")
    for edges in itertools.product(range(h + 1), repeat=w):
        inside = sum(float(s[e:, x].sum()) for x, e in enumerate(edges))
        steps = [h, *edges, h]  # the sides count as empty columns
        jumps = sum(abs(a - b) for a, b in zip(steps, steps[1:]))
        best = max(best, inside - smooth * jumps)
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_band_is_the_best_band_by_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    evidence = torch.randint(-1, 2, (4, 5), generator=g).double()
    evidence[2:, 1:4] = 1.0  # a hood-like block so the best band is not always empty
    band, score = bottom_band(evidence, 0.05, 0.5)
    assert score == pytest.approx(_brute_band(evidence, 0.05, 0.5), abs=1e-9)
    # The returned band is one the score describes: rows below a per-column edge, scoring it.
    edges = [int((~band[:, x]).sum()) for x in range(5)]
    assert all(bool(band[e:, x].all()) and not bool(band[:e, x].any()) for x, e in enumerate(edges))
    steps = [4, *edges, 4]
    own = (sum(float((evidence[e:, x] - 0.05).sum()) for x, e in enumerate(edges))
           - 0.5 * sum(abs(a - b) for a, b in zip(steps, steps[1:])))
    assert own == pytest.approx(score, abs=1e-9)


def test_band_is_empty_without_evidence():
    band, score = bottom_band(torch.zeros(6, 7), 0.05, 2.0)
    assert not bool(band.any()) and score == 0.0
    band, _ = bottom_band(-torch.ones(6, 7), 0.05, 2.0)
    assert not bool(band.any())


def _band(edges: list[int], h: int = 10) -> torch.Tensor:
    return torch.arange(h)[:, None] >= torch.tensor(edges)[None, :]


def test_close_gaps_by_hand():
    # two parts, columns 1-2 (edge 6) and 7 (edge 4); columns 3-6 between them: a straight line
    # from 6 to 4 over 5 steps: 5.6, 5.2, 4.8, 4.4 -> rounded 6, 5, 5, 4
    band = _band([10, 6, 6, 10, 10, 10, 10, 4, 10])
    assert torch.equal(close_gaps(band), _band([10, 6, 6, 6, 5, 5, 4, 4, 10]))
    # every found column is a part: each gap between neighbouring parts; nothing beyond the
    # outermost parts
    band = _band([10, 8, 10, 2, 10, 8, 10])
    assert torch.equal(close_gaps(band), _band([10, 8, 5, 2, 5, 8, 10]))
    for same in (_band([10, 7, 7, 3, 10]), _band([10] * 4), _band([0, 0, 0])):
        assert torch.equal(close_gaps(same), same)  # one part, none, or all: as it was


def _plane_pair():
    """A textured wall 5 m in front of a camera that moves 0.4 m to its right: every pixel of
    the wall moves 4 pixels to the left between the frames (fx 50). Rows 0–19 are the wall in
    both frames; rows 20–29 show something else in frame b (a change the wall does not
    explain); rows 30–39 stay as they were (a body bolted to the camera)."""
    g = torch.Generator().manual_seed(0)
    h, w, shift = 40, 60, 4
    tex = F.interpolate(torch.rand(1, 1, h // 2, (w + shift) // 2, generator=g) * 3.0,
                        size=(h, w + shift), mode="bilinear", align_corners=False)[0, 0]
    a = tex[:, :w].clone()
    b = tex[:, shift:].clone()  # b(x) = a(x + 4): the wall seen 4 pixels further left
    b[20:30] = torch.rand(10, w, generator=g) * 3.0
    b[30:] = a[30:]
    K = torch.tensor([[50.0, 0, 30], [0, 50.0, 20], [0, 0, 1]])
    cam_a = torch.eye(4)
    cam_b = torch.eye(4)
    cam_b[0, 3] = 0.4
    return a, b, K, cam_a, cam_b, torch.full((h, w), 5.0)


def test_pair_evidence_scene_only_where_the_static_scene_explains_the_change():
    """Against what the wall construction says each region must be: the moving wall is scene
    (−1), a change it does not explain is no evidence, pixels that stayed put where the wall
    would have moved are "still" (and first-order ego evidence); none of them are still where
    the warp leaves the other image (the flow there is −4 px: the first four columns)."""
    a, b, K, cam_a, cam_b, depth = _plane_pair()
    one = pair_evidence(a, b, K, cam_a, cam_b, depth)
    inner = slice(8, 52)
    assert bool((one.evidence[3:17, inner] == -1).all())
    assert not bool(one.still[3:17, inner].any())
    assert bool((one.evidence[23:27, inner] == 0).all())  # changed, but not as the wall would
    assert not bool(one.still[23:27, inner].any())
    assert bool(one.still[33:38, inner].all()) and bool((one.evidence[33:38, inner] >= 0).all())
    assert not bool(one.inside[:, :4].any()) and bool(one.inside[:, 5:].all())
    # LiDAR objects are scene whatever the images say
    objects = torch.zeros(40, 60, dtype=torch.bool)
    objects[33:38, 20:30] = True
    assert bool((pair_evidence(a, b, K, cam_a, cam_b, depth, objects).evidence[objects] == -1).all())


def test_pair_of_frames_by_hand():
    """+2 where every way that could test the pixel found it still (at least one way could),
    and no LiDAR object within OBJECT_MARGIN pixels; elsewhere the two ways' sum."""
    h, w = 5, 2 * OBJECT_MARGIN + 8
    ev_a = torch.full((h, w), -1.0)
    ev_b = torch.full((h, w), 1.0)
    t, f = torch.ones(h, w, dtype=torch.bool), torch.zeros(h, w, dtype=torch.bool)
    none = torch.zeros(h, w, dtype=torch.bool)
    # both ways inside and still: +2
    assert bool((pair_of_frames(PairEvidence(ev_a, t, t), PairEvidence(ev_b, t, t), none) == 2).all())
    # one way still, the other inside and not still: the sum (0)
    assert bool((pair_of_frames(PairEvidence(ev_a, t, t), PairEvidence(ev_b, f, t), none) == 0).all())
    # one way still, the other outside its image: +2; neither inside: the sum
    assert bool((pair_of_frames(PairEvidence(ev_a, t, t), PairEvidence(ev_b, f, f), none) == 2).all())
    assert bool((pair_of_frames(PairEvidence(ev_a, f, f), PairEvidence(ev_b, f, f), none) == 0).all())
    # a LiDAR object at column 0: columns up to OBJECT_MARGIN keep the sum, beyond get +2
    obj = none.clone()
    obj[2, 0] = True
    out = pair_of_frames(PairEvidence(ev_a, t, t), PairEvidence(ev_b, t, t), obj)
    assert bool((out[:, :OBJECT_MARGIN + 1] == 0).all()) and bool((out[:, OBJECT_MARGIN + 1:] == 2).all())


@pytest.fixture(scope="module")
def hood_clips(tmp_path_factory) -> list[Clip]:
    from splatnet.clip.synth import generate

    root = tmp_path_factory.mktemp("hood")
    return [Clip.load(generate(root / f"s{s}", s, cameras=6, frames=3, size=SIZE, realism="real"))
            for s in HOOD_SEEDS]


def _estimate(clip: Clip, frames=(0, 2)):
    views = clip.views(frames=list(frames), size=SIZE)
    return views, estimate_ego_masks(views, {f: clip.lidar(f) for f in frames})


def test_estimate_finds_the_generators_hoods_and_nothing_else(hood_clips):
    ious = []
    for clip in hood_clips:
        views, found = _estimate(clip)
        assert views.masks is not None  # the generator's own masks: the reference
        for c, name in enumerate(clip.rig_camera_names):
            truth = ~views.masks[c, ..., 0]
            if truth.any():  # the preset's hood cameras (front and back)
                assert name in found, f"{name}: its hood was not found"
                ious.append(float((found[name] & truth).sum() / (found[name] | truth).sum()))
            else:
                assert name not in found, f"{name} has no hood, yet {found[name].float().mean():.1%}"
    assert min(ious) > 0.5 and sum(ious) / len(ious) > 0.65, ious


def test_estimate_is_deterministic(hood_clips):
    _, a = _estimate(hood_clips[0])
    _, b = _estimate(hood_clips[0])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_no_masks_when_the_ego_does_not_move_or_has_no_lidar(hood_clips):
    clip = hood_clips[0]
    views = clip.views(frames=[0, 0], size=SIZE)  # the same frame twice: no baseline
    assert estimate_ego_masks(views, {0: clip.lidar(0)}) == {}
    views = clip.views(frames=[0, 2], size=SIZE)
    assert estimate_ego_masks(views, {}) == {}


def test_prepare_inputs_uses_the_clips_own_masks_and_estimates_only_without_them(hood_clips):
    clip = hood_clips[0]
    own = prepare_inputs(clip, 4, frames=[0, 2], size=SIZE)
    assert own.ego is not None and not own.ego.estimated  # the clip's masks, not an estimate
    truth = clip.views(frames=[0, 2], size=SIZE).masks
    assert torch.equal(own.valid[0].permute(0, 2, 3, 1), truth)
    with pytest.raises(ValidationError, match="ego_masks"):
        prepare_inputs(clip, 4, frames=[0, 2], size=SIZE, ego_masks="yes")


def test_prepare_inputs_estimates_for_a_clip_without_masks(hood_clips, monkeypatch):
    clip = hood_clips[1]
    real = Clip.views

    def without_masks(self, *a, **k):  # the same clip as if converted without --masks
        v = real(self, *a, **k)
        v.masks = None
        return v

    monkeypatch.setattr(Clip, "views", without_masks)
    inputs = prepare_inputs(clip, 4, frames=[0, 2], size=SIZE)
    assert inputs.ego is not None and inputs.ego.estimated
    views, found = _estimate(clip)
    assert set(inputs.ego.masks) == set(found)
    want = masks_for_views(found, views.camera_names, SIZE)  # [V, H, W, 1] validity
    assert torch.equal(inputs.valid[0].permute(0, 2, 3, 1), want)
    assert prepare_inputs(clip, 4, frames=[0, 2], size=SIZE, ego_masks="off").ego is None
    assert prepare_inputs(clip, 4, frames=[0, 2], size=SIZE, use_lidar=False).ego is None


def test_a_scene_keeps_the_ego_layer_and_draws_it_over_held_out_rig_views(hood_clips, tmp_path):
    """``reconstruct_scene`` keeps the clip's masks as the scene's ego layer (through its file);
    a render of a rig camera at the held-out time shows that camera's context image there (the
    nearer frame, as recorded) and the scene's own render elsewhere; refining the scene leaves
    those pixels out of views that have no masks."""
    import splatnet
    from splatnet.optimization import refine_scene
    from splatnet.scene import Scene

    clip = hood_clips[0]
    model = splatnet.load_model()
    scene = Scene.load(splatnet.reconstruct_scene(clip, model, frames=[0, 2], size=SIZE)
                       .save(tmp_path / "s.scene"))
    views = clip.views(frames=[0, 2], size=SIZE)
    truth = {n: ~views.masks[views.camera_names.index(n), ..., 0] for n in clip.rig_camera_names}
    covered = {n for n, m in truth.items() if bool(m.any())}
    assert covered and scene.ego is not None and not scene.ego.estimated
    assert set(scene.ego.masks) == covered
    assert all(torch.equal(scene.ego.masks[n], truth[n]) for n in covered)
    held = clip.views(frames=[1], size=SIZE)
    with torch.no_grad():
        on = scene.render(held.cameras).rgb
        off = scene.render(held.cameras, ego=False).rgb
    t1, t0, t2 = (float(clip.timestamps[f]) for f in (1, 0, 2))
    near = 0 if abs(t1 - t0) <= abs(t1 - t2) else 1  # a tie to the earlier frame
    for v, n in enumerate(held.camera_names):
        body = truth[n]
        if n in covered:
            src = views.images[[i for i, c in enumerate(views.camera_names) if c == n][near]]
            assert torch.equal(on[v][body], src[body])
        assert torch.equal(on[v][~body], off[v][~body])
    # Refinement of views without masks takes them from the layer: as if given the clip's.
    given = clip.views(frames=[0, 2], size=SIZE)
    bare = clip.views(frames=[0, 2], size=SIZE)
    bare.masks = None
    a, b = refine_scene(scene, bare, 3), refine_scene(scene, given, 3)
    c = refine_scene(scene.replace(ego=None), bare, 3)
    # (the CPU backward's sums are not bit for bit the same from run to run: ~1e-8)
    for k, x in a.background.fields().items():
        torch.testing.assert_close(x, getattr(b.background, k), atol=1e-6, rtol=0)
    assert float((a.background.sh - c.background.sh).abs().max()) > 1e-4
    assert float((a.background.sh - scene.background.sh).abs().max()) > 1e-4  # it did refine
    assert set(a.ego.masks) == covered


def test_sample_clip_has_no_ego():
    if not SAMPLE.is_dir():
        pytest.skip("bundled sample clip missing")
    assert prepare_inputs(Clip.load(SAMPLE), 4, frames=[0, 2], size=SIZE).ego is None


def test_layer_draws_the_nearest_context_frames_pixels_of_that_camera():
    from splatnet.cameras import Cameras
    from splatnet.clip import Views

    h, w = 4, 6
    images = torch.stack([torch.full((h, w, 3), v / 10.0) for v in range(4)])  # 2 frames x 2 cams
    K = torch.eye(3).expand(4, 3, 3)
    cams = Cameras(K, torch.eye(4).expand(4, 4, 4), w, h,
                   timestamps=torch.tensor([0.0, 0.0, 0.2, 0.2]), names=["a", "b", "a", "b"])
    views = Views(cams, images, torch.tensor([0, 0, 2, 2]), ["a", "b", "a", "b"], ["rig"] * 4)
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[2:, 1:5] = True
    layer = EgoLayer.from_views(views, {"a": mask, "b": torch.zeros(h, w, dtype=torch.bool)}, True)
    assert layer.covers("a") and not layer.covers("b") and not layer.covers(None)
    render = torch.ones(h, w, 3)
    early, late = layer.composite(render, "a", 0.05), layer.composite(render, "a", 0.16)
    assert torch.equal(early[mask], torch.full((int(mask.sum()), 3), 0.0))  # frame 0's view a
    assert torch.equal(late[mask], torch.full((int(mask.sum()), 3), 0.2))  # frame 2's view a
    assert torch.equal(early[~mask], render[~mask]) and torch.equal(late[~mask], render[~mask])
    big = layer.composite(torch.ones(2 * h, 2 * w, 3), "a", 0.0)  # another size: scaled
    assert int((big[..., 0] == 0).sum()) == 4 * int(mask.sum())
    assert layer.fractions() == {"a": pytest.approx(8 / 24)}
    valid = layer.validity(["a", "b", "a"], (h, w))
    assert valid.shape == (3, h, w, 1) and torch.equal(valid[0, ..., 0], ~mask) and bool(valid[1].all())


@pytest.fixture(scope="module")
def dgp_clip(tmp_path_factory) -> Clip:
    if not (DGP / "scene_02").is_dir():
        pytest.skip("shared DGP data missing")
    from splatnet.clip.convert import convert

    return Clip.load(convert("dgp", DGP / "scene_02", tmp_path_factory.mktemp("dgp") / "clip"))


def test_dgp_hoods_found_and_held_out_better(dgp_clip):
    """DDAD-style cameras see the car's hood and the data has no masks: the estimate finds it in
    the cameras that show it (not the forward CAMERA_01), and the held-out frame improves."""
    import splatnet
    from splatnet.pipeline.evaluate import evaluate_clip

    views = dgp_clip.views(frames=[0, 2], size=(128, 200))
    found = estimate_ego_masks(views, {f: dgp_clip.lidar(f) for f in (0, 2)})
    assert "CAMERA_01" not in found and {"CAMERA_05", "CAMERA_06", "CAMERA_09"} <= set(found)
    # the side cameras' glossy black body, mirroring the trees and the sky (the still test)
    assert {"CAMERA_07", "CAMERA_08"} <= set(found)
    assert all(float(found[c][-10:].float().mean()) > 0.5 for c in ("CAMERA_07", "CAMERA_08"))
    model = splatnet.load_model()
    on = evaluate_clip(dgp_clip, model, holdout_frames=[1], size=(128, 200))
    off = evaluate_clip(dgp_clip, model, holdout_frames=[1], size=(128, 200), ego_masks="off")
    assert off["ego"] is None and "scene" not in off
    assert on["ego"]["masks"] == "estimated" and set(on["ego"]["cameras"]) == set(found)
    assert on["psnr"] > off["psnr"] + 0.5 and on["context_views"]["psnr"] > off["context_views"]["psnr"]
    assert on["nearest_context"] == off["nearest_context"]  # the floor does not move
    assert on["scene"]["psnr"] > on["scene"]["nearest_context"]["psnr"]
    json.dumps(on)  # JSON-ready


def test_cli_reconstruct_and_eval_say_what_they_estimated(dgp_clip, tmp_path, capsys):
    from splatnet.cli import main

    clip = str(dgp_clip.path)
    assert main(["reconstruct", clip, "-o", str(tmp_path / "a.ply"), "--frames", "0:3"]) == 0
    out = capsys.readouterr().out
    assert "the ego's own body, estimated and left out of the Gaussians" in out and "CAMERA_09" in out
    assert main(["reconstruct", clip, "-o", str(tmp_path / "b.ply"), "--frames", "0:3", "--json",
                 "--no-ego-masks"]) == 0
    assert json.loads(capsys.readouterr().out)["ego_masks"] is None
    assert main(["eval", clip, "--holdout-frames", "1", "--size", "128x200",
                 "--report", str(tmp_path / "off.json"), "--no-ego-masks"]) == 0
    assert "the ego's own body" not in capsys.readouterr().out
    assert main(["eval", clip, "--holdout-frames", "1", "--size", "128x200",
                 "--report", str(tmp_path / "on.json")]) == 0
    assert "without those pixels" in capsys.readouterr().out
    on, off = (json.loads((tmp_path / f"{k}.json").read_text()) for k in ("on", "off"))
    assert off["ego"] is None and on["ego"]["masks"] == "estimated" and on["psnr"] > off["psnr"]


def test_estimation_time_is_its_own_stage(dgp_clip):
    import splatnet
    from splatnet.pipeline.feedforward import reconstruct_clip

    rec = reconstruct_clip(dgp_clip, splatnet.load_model(), frames=[0, 2], size=(128, 200))
    assert rec.ego is not None and rec.timings["ego_masks"] > 0
    off = reconstruct_clip(dgp_clip, splatnet.load_model(), frames=[0, 2], size=(128, 200),
                           ego_masks="off")
    assert off.ego is None and "ego_masks" not in off.timings


@pytest.mark.parametrize("command", ["reconstruct", "eval"])
def test_batch_passes_no_ego_masks_on(command, tmp_path):
    from splatnet.cli import build_parser
    from splatnet.cli.batch import _spec

    args = build_parser().parse_args(["batch", command, "clips/*", "--out-dir", str(tmp_path)])
    assert _spec(args).use_ego_masks is True
    args = build_parser().parse_args(["batch", command, "clips/*", "--out-dir", str(tmp_path),
                                      "--no-ego-masks"])
    assert _spec(args).use_ego_masks is False


def test_batch_settings_record_says_what_ran():
    """The per-clip settings a resumed batch compares: tracks for a .scene output whatever the
    ego masks, and ego_masks only when switched off (earlier records stay valid)."""
    from splatnet.batch.job import BatchSpec
    from splatnet.batch.run import _Settings

    on = _Settings(BatchSpec("reconstruct", format="scene"), "local").base
    off = _Settings(BatchSpec("reconstruct", format="scene", use_ego_masks=False), "local").base
    assert on["tracks"] is True and off["tracks"] is True
    assert "ego_masks" not in on and off["ego_masks"] is False
    assert "tracks" not in _Settings(BatchSpec("reconstruct"), "local").base
    ev = _Settings(BatchSpec("eval", format="json", use_ego_masks=False), "local").base
    assert ev["ego_masks"] is False and "refine" not in ev
