"""LPIPS v0.1, the learned perceptual distance of Zhang et al. 2018 ("The Unreasonable
Effectiveness of Deep Features as a Perceptual Metric"), on AlexNet or VGG16 features.

Nothing is bundled and nothing is downloaded: the weights come from local files.

- the backbone: torchvision's ImageNet state dict (``features.N.weight/bias``), e.g.
  ``alexnet-owt-7be5be79.pth`` or ``vgg16-397923af.pth`` from ``~/.cache/torch/hub/checkpoints/``;
  ``classifier.*`` keys are ignored;
- the linear layers: the lpips package's ``weights/v0.1/alex.pth`` or ``vgg.pth``
  (``lin0.model.1.weight`` … ``lin4.model.1.weight``). When only a backbone is given and the lpips
  package is installed, its file is found without importing the package (which needs
  torchvision).

``LPIPS.from_files`` takes those two files, one file holding both (``LPIPS.state_dict()``, or the
lpips package's own ``LPIPS().state_dict()``), or a directory holding them; ``.pth``/``.pt`` are
read with ``torch.load(weights_only=True)`` (never unpickling code) and ``.safetensors`` as such.

The computation is the reference one (``lpips.LPIPS(net, version='0.1')`` with
``normalize=True``): images in ``[0, 1]`` go to ``[-1, 1]``, then ``(x - shift) / scale``; each of
five ReLU outputs is unit-normalised over channels per pixel, the squared difference of the two
images' features is weighted per channel by the layer's 1×1 linear weights, averaged over the
pixels, and the five layers are summed.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from splatnet.errors import FormatError, ValidationError
from splatnet.io.torch_weights import load_torch_weights

NETS = ("alex", "vgg")
WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors")
# lpips' ScalingLayer: ImageNet statistics expressed for inputs in [-1, 1].
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10  # lpips.normalize_tensor

_GET_WEIGHTS = {
    "alex": "torchvision's alexnet-owt-7be5be79.pth and the lpips package's weights/v0.1/alex.pth",
    "vgg": "torchvision's vgg16-397923af.pth and the lpips package's weights/v0.1/vgg.pth",
}


@dataclasses.dataclass(frozen=True)
class _Spec:
    """torchvision's ``features`` up to the last tap, layer by layer, in its own indexing."""

    layers: tuple[tuple, ...]  # ("conv", c_in, c_out, kernel, stride, padding) | ("relu",) | ("pool", k, s)
    taps: tuple[int, ...]  # indices of the ReLUs whose outputs LPIPS compares

    @property
    def channels(self) -> tuple[int, ...]:
        convs = [i for i, layer in enumerate(self.layers) if layer[0] == "conv"]
        return tuple(self.layers[max(c for c in convs if c < t)][2] for t in self.taps)

    def out_size(self, size: int) -> int:
        """Spatial size at the last tap for a square input of ``size`` (< 1: the network fails)."""
        for layer in self.layers:
            if layer[0] == "conv":
                _, _, _, k, s, p = layer
                size = (size + 2 * p - k) // s + 1
            elif layer[0] == "pool":
                size = (size - layer[1]) // layer[2] + 1
            if size < 1:
                return 0
        return size

    @property
    def min_size(self) -> int:
        return next(s for s in range(1, 1024) if self.out_size(s) >= 1)


def _vgg16() -> _Spec:
    layers: list[tuple] = []
    taps = []
    c_in = 3
    for block, (c_out, convs) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]):
        if block:
            layers.append(("pool", 2, 2))
        for _ in range(convs):
            layers += [("conv", c_in, c_out, 3, 1, 1), ("relu",)]
            c_in = c_out
        taps.append(len(layers) - 1)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
    return _Spec(tuple(layers), tuple(taps))


SPECS: dict[str, _Spec] = {
    "alex": _Spec(
        (("conv", 3, 64, 11, 4, 2), ("relu",), ("pool", 3, 2),
         ("conv", 64, 192, 5, 1, 2), ("relu",), ("pool", 3, 2),
         ("conv", 192, 384, 3, 1, 1), ("relu",),
         ("conv", 384, 256, 3, 1, 1), ("relu",),
         ("conv", 256, 256, 3, 1, 1), ("relu",)),
        taps=(1, 4, 7, 9, 11)),
    "vgg": _vgg16(),
}


class _Lin(nn.Module):
    """lpips' NetLinLayer: ``model.1`` is a 1×1 conv without bias. ``model.0`` was a Dropout,
    an identity here so that the metric is deterministic in training mode too."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))


class LPIPS(nn.Module):
    """LPIPS v0.1 distance between images; build it with :meth:`from_files`.

    ``LPIPS(net)`` alone has untrained weights (the architecture, for ``load_state_dict``); its
    state dict uses torchvision's and lpips' key names, so ``safetensors.torch.save_file(
    m.state_dict(), "lpips_alex.safetensors")`` writes a one-file copy ``from_files`` reads back.

    The weights are frozen; gradients flow to the images, so it also serves as a loss.

    Shape:
        - pred, target: ``[..., H, W, 3]`` in ``[0, 1]``, channels last like ``metrics.psnr``;
          H and W at least :attr:`min_size` (31 for alex, 16 for vgg). Cast to the weights' dtype.
        - output: ``[...]``, one distance per image (0 for identical images).

    Example:
        >>> m = LPIPS.from_files("alexnet-owt-7be5be79.pth", "alex.pth")  # doctest: +SKIP
        >>> m(pred, target).mean()                                        # doctest: +SKIP
    """

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        if net not in SPECS:
            raise ValidationError(f"lpips: unknown network {net!r}; expected one of {list(NETS)}")
        spec = SPECS[net]
        self.net = net
        self.min_size = spec.min_size
        self.sources: list[str] = []  # the files the weights came from
        self._taps = spec.taps
        layers: list[nn.Module] = []
        for layer in spec.layers:
            if layer[0] == "conv":
                _, c_in, c_out, k, s, p = layer
                layers.append(nn.Conv2d(c_in, c_out, k, stride=s, padding=p))
            elif layer[0] == "relu":
                layers.append(nn.ReLU())
            else:
                layers.append(nn.MaxPool2d(layer[1], layer[2]))
        self.features = nn.Sequential(*layers)
        for k, c in enumerate(spec.channels):
            self.add_module(f"lin{k}", _Lin(c))
        self.requires_grad_(False)

    @classmethod
    def from_files(cls, *paths: str | os.PathLike, net: str | None = None) -> LPIPS:
        """Load from local files: a backbone and a linear-layer file, one file with both, or a
        directory holding them (its ``.pth``/``.pt``/``.safetensors`` files are read and those
        holding neither are ignored). ``net`` ('alex' or 'vgg') picks one when a directory holds
        both; by default the network is recognised from the weights' names and shapes.

        Every file named must be used: a missing, unreadable or incomplete file, weights of the
        wrong shape, or a backbone and linear layers of different networks raise an error that
        names the file (``FileNotFoundError``, ``FormatError`` or ``ValidationError``).
        """
        if net is not None and net not in SPECS:
            raise ValidationError(f"lpips: unknown network {net!r}; expected one of {list(NETS)}")
        parts = _gather(paths, net)
        chosen, backbone, lins = _select(parts, paths, net)
        model = cls(chosen)
        model.load_state_dict({**backbone.tensors, **lins.tensors})
        model.sources = list(dict.fromkeys([str(backbone.path.absolute()), str(lins.path.absolute())]))
        return model

    def check_size(self, height: int, width: int, hint: str = "") -> None:
        """Raise ``ValidationError`` when images of ``height × width`` are too small for the
        network (``hint`` is appended to the message, e.g. how to change the size)."""
        if min(height, width) < self.min_size:
            raise ValidationError(f"lpips ({self.net}): images of {width}x{height} are too small; "
                                  f"the {self.net} network needs at least "
                                  f"{self.min_size}x{self.min_size} pixels{hint}")

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
            raise ValidationError("lpips: expected two tensors [..., H, W, 3]")
        if pred.shape != target.shape or pred.dim() < 3 or pred.shape[-1] != 3:
            raise ValidationError(f"lpips: expected two images [..., H, W, 3] of the same shape, got "
                                  f"{list(pred.shape)} and {list(target.shape)}")
        lead = pred.shape[:-3]
        h, w = pred.shape[-3:-1]
        self.check_size(h, w)
        weight = self.lin0.model[1].weight
        x = torch.cat([pred.reshape(-1, h, w, 3), target.reshape(-1, h, w, 3)])
        x = x.to(weight.dtype).permute(0, 3, 1, 2)  # [2N, 3, H, W]
        shift = x.new_tensor(SHIFT).view(1, 3, 1, 1)
        scale = x.new_tensor(SCALE).view(1, 3, 1, 1)
        x = (2.0 * x - 1.0 - shift) / scale
        n = x.shape[0] // 2
        total = x.new_zeros(n)
        k = 0
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._taps:
                # vector_norm's backward is 0 (not NaN) where every channel is 0.
                f = x / (torch.linalg.vector_norm(x, dim=1, keepdim=True) + EPS)
                diff = (f[:n] - f[n:]) ** 2  # [N, C, h, w]
                total = total + getattr(self, f"lin{k}").model(diff).mean(dim=(1, 2, 3))
                k += 1
        return total.reshape(lead)

    def extra_repr(self) -> str:
        return f"net={self.net!r}"


# ---------------------------------------------------------------------------- loading
@dataclasses.dataclass
class _Part:
    """A backbone or the linear layers of one network, as found in one file."""

    path: Path
    explicit: bool  # named by the user (must be used), or found in a directory
    net: str
    kind: str  # "backbone" | "lin"
    tensors: dict[str, Tensor]


def _gather(paths, net: str | None) -> list[_Part]:
    if not paths:
        raise ValidationError("lpips: no weight files given")
    parts: list[_Part] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such LPIPS weights file or directory")
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
            if not files:
                raise FileNotFoundError(f"{path}: no {'/'.join(WEIGHT_SUFFIXES)} file in this directory")
            for f in files:
                parts += _parts_of(f, _read(f), explicit=False, net=net)
        else:
            found = _parts_of(path, _read(path), explicit=True, net=net)
            if not found:
                raise ValidationError(
                    f"{path}: holds neither an AlexNet/VGG16 backbone (torchvision's features.N.*) "
                    f"nor LPIPS linear layers (lin0.model.1.weight ...)")
            parts += found
    return parts


def _read(path: Path) -> dict[str, Tensor]:
    """A flat dict of tensors from a .safetensors or torch file, without unpickling code."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            # mmap: a torchvision file also holds the classifier (most of VGG16's 528 MB), unused.
            # No warning either: a pickle-protocol warning would be a second line of output.
            state = load_torch_weights(path, mmap=zipfile.is_zipfile(path))
    except Exception as exc:  # corrupt files fail in many ways (pickle, zip, safetensors header)
        kind = "safetensors" if path.suffix == ".safetensors" else "torch weights"
        raise FormatError(f"{path}: not a readable {kind} file ({_short(exc)})") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise FormatError(f"{path}: expected a dict of tensors, got {type(state).__name__}")
    bad = sorted(str(k) for k, v in state.items() if not isinstance(v, Tensor))
    if bad:
        raise FormatError(f"{path}: expected a dict of tensors; not tensors: {_names(bad)}")
    return dict(state)


def _short(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # torch's weights_only refusal is a page of advice; its last line says what was refused.
    text = lines[-1] if any("weights_only" in line for line in lines) else (lines[0] if lines else "")
    text = text or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "…"


_SLICE = re.compile(r"^net\.slice\d+\.(\d+\.)")  # the lpips package's own LPIPS().state_dict()
_LIN = re.compile(r"^lin\d+\.")
_IGNORED = ("classifier.", "scaling_layer.", "lins.")  # torchvision's head; lpips' buffers and alias


def _parts_of(path: Path, state: dict[str, Tensor], *, explicit: bool, net: str | None) -> list[_Part]:
    backbone: dict[str, Tensor] = {}
    lins: dict[str, Tensor] = {}
    other = []
    for key, t in state.items():
        key = _SLICE.sub(r"features.\1", key)
        if key.startswith("features."):
            backbone[key] = t
        elif _LIN.match(key):
            lins[key] = t
        elif not key.startswith(_IGNORED):
            other.append(key)
    if not backbone and not lins:
        return []
    if other:
        raise ValidationError(f"{path}: unexpected keys {_names(other)} next to the LPIPS weights")
    found = []
    for kind, tensors in (("backbone", backbone), ("lin", lins)):
        if tensors:
            part_net = _check_part(path, kind, tensors)
            if net is not None and part_net != net:
                if explicit:
                    raise ValidationError(f"{path}: holds {_describe(part_net, kind)}, but "
                                          f"net={net!r} was asked for")
                continue
            found.append(_Part(path, explicit, part_net, kind, tensors))
    return found


def _expected(net: str, kind: str) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors a backbone or linear-layer file must hold."""
    spec = SPECS[net]
    if kind == "lin":
        return {f"lin{k}.model.1.weight": (1, c, 1, 1) for k, c in enumerate(spec.channels)}
    out: dict[str, tuple[int, ...]] = {}
    for i, layer in enumerate(spec.layers):
        if layer[0] == "conv":
            _, c_in, c_out, k, _, _ = layer
            out[f"features.{i}.weight"] = (c_out, c_in, k, k)
            out[f"features.{i}.bias"] = (c_out,)
    return out


def _check_part(path: Path, kind: str, tensors: dict[str, Tensor]) -> str:
    """The network these tensors are for (the one whose names and shapes match best); raises
    naming the missing, unexpected, misshapen or non-finite tensors."""
    def score(net: str) -> int:
        exp = _expected(net, kind)
        return sum(1 for k, t in tensors.items() if exp.get(k) == tuple(t.shape))

    net = max(NETS, key=score)
    exp = _expected(net, kind)
    missing = [k for k in exp if k not in tensors]
    unexpected = [k for k in tensors if k not in exp]
    wrong = [f"{k} {list(tensors[k].shape)} (expected {list(exp[k])})"
             for k in exp if k in tensors and tuple(tensors[k].shape) != exp[k]]
    if missing or unexpected or wrong:
        problems = [f"{label} {_names(keys)}" for label, keys in
                    (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
        hint = ""
        if kind == "lin" and "lin5.model.1.weight" in tensors:
            hint = " (these look like lpips' squeeze weights; only alex and vgg are supported)"
        elif kind == "backbone" and any(k.endswith("running_mean") for k in tensors):
            hint = " (a batch-norm network; LPIPS uses torchvision's plain alexnet or vgg16)"
        raise ValidationError(f"{path}: not {_describe(net, kind)}: " + "; ".join(problems) + hint)
    nonfinite = [k for k, t in tensors.items() if not t.is_floating_point() or not torch.isfinite(t).all()]
    if nonfinite:
        raise ValidationError(f"{path}: non-finite or non-float tensors {_names(nonfinite)}")
    return net


def _select(parts: list[_Part], paths, net: str | None) -> tuple[str, _Part, _Part]:
    where = ", ".join(str(p) for p in paths)
    explicit_nets = sorted({p.net for p in parts if p.explicit})
    if net is None and len(explicit_nets) > 1:
        a, b = (next(p for p in parts if p.explicit and p.net == n) for n in explicit_nets)
        raise ValidationError(f"lpips: {a.path} holds {_describe(a.net, a.kind)} but {b.path} holds "
                              f"{_describe(b.net, b.kind)}; use files of one network")
    if net is not None:
        chosen = net
    elif explicit_nets:
        chosen = explicit_nets[0]
    else:
        complete = [n for n in NETS if any(p.net == n and p.kind == "backbone" for p in parts)
                    and (any(p.net == n and p.kind == "lin" for p in parts) or _package_lins(n))]
        if len(complete) > 1:
            raise ValidationError(f"lpips: {where} holds weights for both alex and vgg; name the "
                                  f"files, or pick one with net= (--lpips-net)")
        found = sorted({p.net for p in parts})
        chosen = complete[0] if complete else (found[0] if found else "alex")

    def one(kind: str) -> _Part | None:
        mine = [p for p in parts if p.net == chosen and p.kind == kind]
        if len(mine) > 1:
            raise ValidationError(f"lpips: both {mine[0].path} and {mine[1].path} hold "
                                  f"{_describe(chosen, kind)}; pass one")
        return mine[0] if mine else None

    backbone, lins = one("backbone"), one("lin")
    if backbone is None:
        raise ValidationError(f"lpips: no {_describe(chosen, 'backbone', article=False)} in {where}; "
                              f"LPIPS ({chosen}) needs {_GET_WEIGHTS[chosen]}")
    if lins is None:
        bundled = _package_lins(chosen)
        if bundled is None:
            raise ValidationError(f"lpips: no {_describe(chosen, 'lin')} in {where} and no lpips "
                                  f"package installed; pass the lpips package's "
                                  f"weights/v0.1/{chosen}.pth too")
        (lins,) = _parts_of(bundled, _read(bundled), explicit=True, net=chosen)
    return chosen, backbone, lins


def _package_lins(net: str) -> Path | None:
    """``weights/v0.1/{net}.pth`` of an installed lpips package, found without importing it."""
    try:
        spec = importlib.util.find_spec("lpips")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [str(Path(spec.origin).parent)]
    for root in roots:
        path = Path(root) / "weights" / "v0.1" / f"{net}.pth"
        if path.is_file():
            return path
    return None


def _describe(net: str, kind: str, article: bool = True) -> str:
    if kind == "lin":
        return f"LPIPS linear layers for {net}"
    name = {"alex": "AlexNet", "vgg": "VGG16"}[net]
    return f"{'an' if net == 'alex' else 'a'} {name} backbone" if article else f"{name} backbone"


def _names(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return f"[{shown}{', …' if len(keys) > limit else ''}]"
