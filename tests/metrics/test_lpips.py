"""LPIPS v0.1 (``splatnet.metrics.lpips``) against a float64 functional reference written here from the
paper and the lpips package's code, with random weights saved in torchvision's and lpips' file
layouts; loading from every accepted form; every refused input; ``splatnet eval --lpips-weights``.
"""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from splatnet.cli import main
from splatnet.errors import FormatError, ValidationError
from splatnet.metrics.lpips import LPIPS

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data" / "sample_clip"

# The reference, independent of splatnet.metrics.lpips: torchvision's layer tables written out by hand.
# features index -> (C_in, C_out, kernel); AlexNet's strides/paddings are spelled out below.
ALEX_CONVS = {0: (3, 64, 11), 3: (64, 192, 5), 6: (192, 384, 3), 8: (384, 256, 3), 10: (256, 256, 3)}
VGG_CONVS = {0: (3, 64, 3), 2: (64, 64, 3), 5: (64, 128, 3), 7: (128, 128, 3), 10: (128, 256, 3),
             12: (256, 256, 3), 14: (256, 256, 3), 17: (256, 512, 3), 19: (512, 512, 3),
             21: (512, 512, 3), 24: (512, 512, 3), 26: (512, 512, 3), 28: (512, 512, 3)}
VGG_BLOCKS = [(0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28)]  # tap after each block
LIN_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
CONVS = {"alex": ALEX_CONVS, "vgg": VGG_CONVS}
SIZE = {"alex": 64, "vgg": 32}


def reference_lpips(img0: torch.Tensor, img1: torch.Tensor, w: dict, net: str) -> torch.Tensor:
    """lpips.LPIPS(net, version='0.1')(in0, in1, normalize=True) in float64, images [N, H, W, 3]."""
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)

    def conv(x, i, **kw):
        return F.relu(F.conv2d(x, w[f"features.{i}.weight"].double(), w[f"features.{i}.bias"].double(),
                               **kw))

    def taps(img):
        x = ((2 * img.double() - 1).permute(0, 3, 1, 2) - shift) / scale
        if net == "alex":
            r1 = conv(x, 0, stride=4, padding=2)
            r2 = conv(F.max_pool2d(r1, 3, 2), 3, padding=2)
            r3 = conv(F.max_pool2d(r2, 3, 2), 6, padding=1)
            r4 = conv(r3, 8, padding=1)
            return [r1, r2, r3, r4, conv(r4, 10, padding=1)]
        out = []
        for b, block in enumerate(VGG_BLOCKS):
            if b:
                x = F.max_pool2d(x, 2, 2)
            for i in block:
                x = conv(x, i, padding=1)
            out.append(x)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
        return out

    total = torch.zeros(img0.shape[0], dtype=torch.float64)
    for k, (f0, f1) in enumerate(zip(taps(img0), taps(img1))):
        n0 = f0 / (f0.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        n1 = f1 / (f1.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        lin = w[f"lin{k}.model.1.weight"].double().view(1, -1, 1, 1)
        # The code's weighting (a 1x1 conv on squared differences), i.e. the paper's Eq. 1 with w².
        total = total + ((n0 - n1) ** 2 * lin).sum(1).mean(dim=(1, 2))
    return total


def random_weights(net: str, seed: int) -> tuple[dict, dict]:
    """(torchvision-layout backbone with a classifier, lpips-layout linear layers)."""
    g = torch.Generator().manual_seed(seed)
    backbone = {}
    for i, (c_in, c_out, k) in CONVS[net].items():
        backbone[f"features.{i}.weight"] = torch.randn(c_out, c_in, k, k, generator=g) * math.sqrt(
            2.0 / (c_in * k * k))
        backbone[f"features.{i}.bias"] = 0.1 * torch.randn(c_out, generator=g)
    backbone["classifier.1.weight"] = torch.randn(10, 20, generator=g)  # ignored, as torchvision's
    backbone["classifier.1.bias"] = torch.randn(10, generator=g)
    lins = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g)
            for k, c in enumerate(LIN_CHANNELS[net])}
    return backbone, lins


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict:
    """Per net: the dicts and their files (torchvision and lpips names), in one directory each."""
    out = {}
    for seed, net in enumerate(("alex", "vgg")):
        backbone, lins = random_weights(net, seed)
        d = tmp_path_factory.mktemp(net)
        bb = d / ("alexnet-owt-test.pth" if net == "alex" else "vgg16-test.pth")
        ln = d / f"{net}.pth"
        torch.save(backbone, bb)
        torch.save(lins, ln)
        everything = {**backbone, **lins}
        out[net] = {"backbone": backbone, "lins": lins, "all": everything,
                    "all64": {k: v.double() for k, v in everything.items()},
                    "backbone_file": bb, "lins_file": ln, "dir": d}
    return out


@pytest.fixture(scope="module")
def loaded(weights) -> dict[str, LPIPS]:
    """Per net, the module loaded from the two files, in float64 (VGG16 takes a while to read)."""
    return {net: LPIPS.from_files(w["backbone_file"], w["lins_file"]).double()
            for net, w in weights.items()}


def images(n: int, size: int, seed: int) -> torch.Tensor:
    return torch.rand(n, size, size, 3, generator=torch.Generator().manual_seed(seed),
                      dtype=torch.float64)


def noisy(img: torch.Tensor, level: float, seed: int) -> torch.Tensor:
    noise = torch.rand(img.shape, generator=torch.Generator().manual_seed(seed), dtype=img.dtype)
    return (img + level * (2 * noise - 1)).clamp(0, 1)


# ---------------------------------------------------------------------------- the value
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_the_reference_in_float64(weights, loaded, net: str):
    w = weights[net]
    m = loaded[net]
    assert m.net == net and m.sources == [str(w["backbone_file"]), str(w["lins_file"])]
    a = images(3, SIZE[net], 1)
    b = torch.stack([images(1, SIZE[net], 2)[0], noisy(a[1], 0.1, 3), noisy(a[2], 0.5, 4)])
    got = m(a, b)
    want = reference_lpips(a, b, w["all64"], net)
    assert got.shape == (3,) and got.dtype == torch.float64
    assert (want > 1e-3).all()  # not vacuous
    torch.testing.assert_close(got, want, rtol=1e-10, atol=0)
    # leading dimensions are kept; a rectangular image
    torch.testing.assert_close(m(a[:2].view(2, 1, *a.shape[1:]), b[:2].view(2, 1, *b.shape[1:])),
                               got[:2].view(2, 1), rtol=1e-12, atol=0)
    h, w_ = SIZE[net], SIZE[net] * 3 // 2
    wide_a, wide_b = images(1, w_, 5)[:, :h], noisy(images(1, w_, 5)[:, :h], 0.3, 6)
    torch.testing.assert_close(m(wide_a[0], wide_b[0]), reference_lpips(wide_a, wide_b, w["all64"], net)[0],
                               rtol=1e-10, atol=0)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_float32_agrees_with_the_float64_reference(weights, loaded, net: str):
    m = copy.deepcopy(loaded[net]).float()
    a = images(2, SIZE[net], 7)
    b = noisy(a, 0.2, 8)
    got = m(a.float(), b.float())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), reference_lpips(a, b, weights[net]["all64"], net),
                               rtol=1e-4, atol=1e-6)


def test_zero_for_identical_images_symmetric_and_growing_with_noise(loaded):
    m = loaded["alex"]
    base = 0.3 + 0.4 * images(1, 64, 9)[0]  # [0.3, 0.7]: noise up to 0.3 is never clamped
    # Zero up to float64 rounding, not bit-exact: the two copies of an image may go through
    # different convolution kernels (batch position, thread count), which leaves ~1e-30 here.
    # A wrong implementation (a bias, an unnormalised layer) is off by > 1e-3; the smallest noise
    # level below already scores ~2e-3, so 1e-12 separates the cases by nine orders of magnitude.
    assert 0.0 <= float(m(base, base)) < 1e-12
    other = images(1, 64, 10)[0]
    assert float(m(base, other)) == pytest.approx(float(m(other, base)), rel=1e-9)
    levels = [0.0, 0.01, 0.03, 0.1, 0.2, 0.3]
    values = [float(m(noisy(base, lv, 11), base)) for lv in levels]
    assert 0.0 <= values[0] < 1e-12 and values[1] > 1e-6, values
    assert all(a < b for a, b in zip(values, values[1:])), values


def test_gradient_matches_finite_differences(loaded):
    """Usable as a loss: d/dpred along a random direction vs a central difference, float64."""
    m = loaded["alex"]
    target = images(1, 31, 12)[0]
    pred = noisy(target, 0.2, 13).requires_grad_(True)
    m(pred, target).backward()
    direction = torch.randn(pred.shape, generator=torch.Generator().manual_seed(14), dtype=torch.float64)
    eps = 1e-6
    with torch.no_grad():
        fd = (m(pred + eps * direction, target) - m(pred - eps * direction, target)) / (2 * eps)
    assert torch.isfinite(pred.grad).all()
    assert float((pred.grad * direction).sum()) == pytest.approx(float(fd), rel=1e-6)
    assert not any(p.requires_grad for p in m.parameters())
    # A black image (many all-zero feature pixels) still gives finite gradients.
    black = torch.zeros_like(target, requires_grad=True)
    m(black, target).backward()
    assert torch.isfinite(black.grad).all()


# ---------------------------------------------------------------------------- loading
def _check(m: LPIPS, weights, net: str) -> None:
    """Loaded exactly the weights written (the value for given weights is tested above)."""
    assert m.net == net
    want = {k: v for k, v in weights[net]["all"].items() if not k.startswith("classifier.")}
    got = m.state_dict()
    assert set(got) == set(want)
    assert all(got[k].dtype == torch.float32 and torch.equal(got[k], want[k]) for k in want)


def test_loads_from_one_file_holding_everything(weights, tmp_path: Path):
    path = tmp_path / "lpips_alex.pth"
    torch.save(weights["alex"]["all"], path)
    m = LPIPS.from_files(path)
    assert m.sources == [str(path)]
    _check(m, weights, "alex")


def test_loads_the_lpips_packages_own_state_dict(weights, tmp_path: Path):
    """lpips.LPIPS().state_dict(): net.sliceK.N.*, lin*, the lins.* alias, scaling_layer buffers."""
    slice_of = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}  # lpips' alexnet slices: [0:2] [2:5] [5:8] [8:10] [10:12]
    state = {}
    for key, t in weights["alex"]["backbone"].items():
        if key.startswith("features."):
            i = int(key.split(".")[1])
            state[f"net.slice{slice_of[i]}.{i}.{key.split('.')[2]}"] = t
    for key, t in weights["alex"]["lins"].items():
        state[key] = t
        state["lins." + key[3:]] = t
    state["scaling_layer.shift"] = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    state["scaling_layer.scale"] = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    path = tmp_path / "lpips_module.pt"
    torch.save(state, path)
    _check(LPIPS.from_files(path), weights, "alex")


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_loads_from_two_files_and_from_a_directory(weights, net: str):
    w = weights[net]
    m = LPIPS.from_files(w["lins_file"], w["backbone_file"])  # any order
    assert m.sources == [str(w["backbone_file"]), str(w["lins_file"])]
    _check(m, weights, net)
    m = LPIPS.from_files(w["dir"])
    assert m.sources == [str(w["backbone_file"]), str(w["lins_file"])]
    _check(m, weights, net)


def test_loads_safetensors(weights, tmp_path: Path):
    from safetensors.torch import save_file

    w = weights["alex"]
    one = tmp_path / "lpips_alex.safetensors"
    save_file(w["all"], str(one))
    _check(LPIPS.from_files(one), weights, "alex")
    lins = tmp_path / "alex_lins.safetensors"
    save_file(w["lins"], str(lins))
    _check(LPIPS.from_files(w["backbone_file"], lins), weights, "alex")
    # the module's own state dict round-trips, in half precision too
    again = tmp_path / "again.safetensors"
    save_file({k: v.half() for k, v in LPIPS.from_files(one).state_dict().items()}, str(again))
    m = LPIPS.from_files(again)
    assert all(torch.equal(v, w["all"][k].half().float()) for k, v in m.state_dict().items())


def test_directory_picks_the_complete_network_and_ignores_other_files(weights, tmp_path: Path):
    w = weights["alex"]
    torch.save(w["backbone"], tmp_path / "alexnet-owt-test.pth")
    torch.save(w["lins"], tmp_path / "alex.pth")
    torch.save(weights["vgg"]["backbone"], tmp_path / "vgg16-test.pth")  # no vgg linear layers
    torch.save({"conv1.weight": torch.zeros(4, 3, 7, 7)}, tmp_path / "resnet18-test.pth")
    (tmp_path / "notes.txt").write_text("not weights")
    _check(LPIPS.from_files(tmp_path), weights, "alex")
    # with both networks complete the directory is ambiguous, unless net= says which
    torch.save(weights["vgg"]["lins"], tmp_path / "vgg.pth")
    with pytest.raises(ValidationError, match="both alex and vgg"):
        LPIPS.from_files(tmp_path)
    _check(LPIPS.from_files(tmp_path, net="vgg"), weights, "vgg")


def test_takes_the_lpips_packages_linear_layers_without_importing_it(weights, tmp_path: Path,
                                                                     monkeypatch):
    pkg = tmp_path / "site" / "lpips"
    (pkg / "weights" / "v0.1").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('lpips imports torchvision')\n")
    torch.save(weights["alex"]["lins"], pkg / "weights" / "v0.1" / "alex.pth")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    m = LPIPS.from_files(weights["alex"]["backbone_file"])
    assert m.sources == [str(weights["alex"]["backbone_file"]), str(pkg / "weights" / "v0.1" / "alex.pth")]
    assert "lpips" not in sys.modules
    _check(m, weights, "alex")


# ---------------------------------------------------------------------------- refused inputs
def _edit(state: dict, drop=(), **replace) -> dict:
    out = {k: v for k, v in state.items() if k not in drop}
    out.update({k.replace("__", "."): v for k, v in replace.items()})
    return out


class _NotATensor:
    pass


def test_errors_name_the_file_and_the_problem(weights, tmp_path: Path, monkeypatch):
    alex, vgg = weights["alex"], weights["vgg"]

    def save(name: str, obj) -> Path:
        path = tmp_path / name
        torch.save(obj, path)
        return path

    def refused(exc_type, match: str, *paths, **kw) -> str:
        with pytest.raises(exc_type, match=match) as info:
            LPIPS.from_files(*paths, **kw)
        msg = str(info.value)
        assert "\n" not in msg and len(msg) < 600, msg
        return msg

    missing = tmp_path / "nope.pth"
    assert str(missing) in refused(FileNotFoundError, "no such", missing, alex["lins_file"])
    (tmp_path / "empty").mkdir()
    refused(FileNotFoundError, "no .pth", tmp_path / "empty")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00garbage" * 10)
    assert str(junk) in refused(FormatError, "not a readable torch weights file", junk)
    truncated = tmp_path / "cut.safetensors"
    from safetensors.torch import save_file

    save_file(alex["lins"], str(truncated))
    truncated.write_bytes(truncated.read_bytes()[:50])
    assert str(truncated) in refused(FormatError, "not a readable safetensors file", truncated)
    # a pickle that names code is refused (weights_only), not executed
    code = save("code.pth", {"lin0.model.1.weight": _NotATensor()})
    assert "code.pth" in refused(FormatError, "not a readable", code)
    refused(FormatError, "expected a dict of tensors", save("list.pth", [torch.zeros(1)]))

    no_bias = save("cut_alexnet.pth", _edit(alex["backbone"], drop={"features.10.bias"}))
    assert "features.10.bias" in refused(ValidationError, "missing", no_bias, alex["lins_file"])
    no_lin = save("cut_lins.pth", _edit(alex["lins"], drop={"lin3.model.1.weight"}))
    assert "lin3.model.1.weight" in refused(ValidationError, "missing", alex["backbone_file"], no_lin)
    squashed = save("bad_shape.pth", _edit(alex["backbone"], features__3__weight=torch.zeros(192, 64, 3, 3)))
    refused(ValidationError, r"wrong shape \[features\.3\.weight \[192, 64, 3, 3\] \(expected \[192, 64, "
            r"5, 5\]\)", squashed, alex["lins_file"])
    squeeze = save("squeeze.pth", {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1)
                                   for k, c in enumerate((64, 128, 256, 384, 384, 512, 512))})
    refused(ValidationError, "squeeze", alex["backbone_file"], squeeze)
    nan = save("nan.pth", _edit(alex["lins"], lin0__model__1__weight=torch.full((1, 64, 1, 1), math.nan)))
    refused(ValidationError, r"non-finite.*lin0\.model\.1\.weight", alex["backbone_file"], nan)
    resnet = save("resnet.pth", {"conv1.weight": torch.zeros(4, 3, 7, 7)})
    refused(ValidationError, "holds neither", resnet)

    msg = refused(ValidationError, "use files of one network", alex["backbone_file"], vgg["lins_file"])
    assert str(alex["backbone_file"]) in msg and str(vgg["lins_file"]) in msg and "VGG16" not in msg
    refused(ValidationError, "net='vgg' was asked", alex["backbone_file"], alex["lins_file"], net="vgg")
    refused(ValidationError, "both .* hold an AlexNet backbone", alex["backbone_file"],
            save("alex_copy.pth", alex["backbone"]), alex["lins_file"])
    refused(ValidationError, "no AlexNet backbone", alex["lins_file"])
    monkeypatch.setattr("splatnet.metrics.lpips._package_lins", lambda net: None)
    refused(ValidationError, r"no lpips package installed; pass the lpips package's weights/v0.1/alex\.pth",
            alex["backbone_file"])


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_images_too_small_for_the_network(loaded, net: str):
    m = loaded[net]
    ok = {"alex": 31, "vgg": 16}[net]  # smaller, and a pooling layer's output would be empty
    assert m.min_size == ok
    assert torch.isfinite(m(torch.rand(ok, 3 * ok, 3), torch.rand(ok, 3 * ok, 3)))
    with pytest.raises(RuntimeError, match="too small"):  # what the check stands in for
        m.features(torch.rand(1, 3, ok - 1, 3 * ok, dtype=torch.float64))
    with pytest.raises(ValidationError, match=f"{3 * ok}x{ok - 1} are too small.*{ok}x{ok}"):
        m(torch.rand(ok - 1, 3 * ok, 3), torch.rand(ok - 1, 3 * ok, 3))
    with pytest.raises(ValidationError, match="same shape"):
        m(torch.rand(ok, ok, 3), torch.rand(ok, ok + 1, 3))


# ---------------------------------------------------------------------------- splatnet eval
@pytest.mark.skipif(not SAMPLE.is_dir(), reason="bundled sample clip missing")
def test_eval_reports_lpips_with_local_weights(weights, model_file: Path, tmp_path: Path, capsys):
    w = weights["alex"]
    report = tmp_path / "r.json"
    assert main(["eval", str(SAMPLE), "--checkpoint", str(model_file), "--size", "64x112",
                 "--holdout-frames", "2", "--report", str(report),
                 "--lpips-weights", f"{w['backbone_file']},{w['lins_file']}"]) == 0
    table = capsys.readouterr().out
    doc = json.loads(report.read_text())
    lp = doc["lpips"]
    assert lp["net"] == "alex" and lp["weights"] == [str(w["backbone_file"]), str(w["lins_file"])]
    values = [r["lpips"] for r in doc["per_view"]]
    assert len(values) == 6 and all(math.isfinite(v) and v > 0 for v in values)
    assert lp["mean"] == pytest.approx(sum(values) / len(values))
    assert "LPIPS" in table.splitlines()[1] and f"{lp['mean']:6.3f}" in table
    assert {"lpips", "load_lpips"} <= set(doc["timings"])
    # too small for AlexNet: refused before the network runs
    assert main(["eval", str(SAMPLE), "--checkpoint", str(model_file), "--size", "16x28",
                 "--holdout-frames", "2", "--report", str(tmp_path / "small.json"),
                 "--lpips-weights", str(w["dir"])]) == 1
    assert "--size" in capsys.readouterr().err and not (tmp_path / "small.json").exists()


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="bundled sample clip missing")
def test_eval_bad_lpips_path_fails_fast_in_one_line(weights, model_file: Path, tmp_path: Path):
    bad = tmp_path / "alexnet-missing.pth"
    report = tmp_path / "r.json"
    res = subprocess.run([sys.executable, "-m", "splatnet", "eval", str(SAMPLE), "--checkpoint",
                          str(model_file), "--report", str(report), "--lpips-weights",
                          f"{bad},{weights['alex']['lins_file']}"], capture_output=True, text=True)
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("splatnet eval: error:"), res.stderr
    assert str(bad) in lines[0] and not report.exists()
