"""Trainable Gaussians in pre-activation form, with an Adam optimiser whose state follows them.

Densification adds and removes Gaussians; Adam's moment estimates must be cut and extended the
same way (new Gaussians start with zero moments, as in the reference 3DGS code). This class owns
both so that the parameters and the optimiser state can never disagree on N.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from splatnet.errors import ValidationError
from splatnet.gaussians import Gaussians
from splatnet.sh import num_sh_bases

#: Parameter names, in the order of the optimiser's groups (the last two: dynamic Gaussians only;
#: ``times`` is carried along but never trained).
NAMES = ("means", "quats", "log_scales", "logit_opacities", "sh_dc", "sh_rest", "velocities", "times")

# Activated opacities are clamped into [OPACITY_EPS, 1 - OPACITY_EPS] before the logit, so a
# network output of exactly 0 or 1 becomes a finite (and still trainable) parameter.
OPACITY_EPS = 1e-4
SCALE_MIN = 1e-8


class GaussianParams:
    """Pre-activation parameters of N static Gaussians (log scales, logit opacities, raw quats,
    SH DC + rest) and one Adam optimiser with a learning rate per parameter.

    Args:
        gaussians: the starting point, unbatched (``batch_shape == ()``); dynamic Gaussians
            (velocities, times) get their velocities trained and their times kept.
        lrs: learning rate per name in :data:`NAMES` (``sh_rest`` may be absent at degree 0,
            ``velocities`` and ``times`` for static Gaussians).
        sh_degree: SH degree of the trainable coefficients; the input's SH is padded with zeros
            or truncated to it.
    """

    def __init__(self, gaussians: Gaussians, lrs: Mapping[str, float], sh_degree: int) -> None:
        if gaussians.batch_shape != ():
            raise ValidationError(f"optimisation takes one scene (batch_shape ()), got Gaussians "
                                  f"with batch shape {gaussians.batch_shape}")
        if not 0 <= sh_degree <= 3:
            raise ValidationError(f"sh_degree: expected 0-3, got {sh_degree}")
        self.sh_degree = sh_degree
        g = gaussians.detach()
        k = num_sh_bases(sh_degree)
        sh = g.sh[:, :k]
        if sh.shape[1] < k:
            sh = torch.cat([sh, sh.new_zeros(sh.shape[0], k - sh.shape[1], 3)], dim=1)
        values = {
            "means": g.means,
            "quats": g.quats,
            "log_scales": torch.log(g.scales.clamp_min(SCALE_MIN)),
            "logit_opacities": torch.logit(g.opacities.clamp(OPACITY_EPS, 1 - OPACITY_EPS)),
            "sh_dc": sh[:, :1],
            "sh_rest": sh[:, 1:],
            "velocities": g.velocities,
            "times": g.times,
        }
        self.names = [n for n in NAMES if values[n] is not None and (n != "sh_rest" or k > 1)]
        self.params: dict[str, nn.Parameter] = {
            n: self._parameter(n, values[n].clone()) for n in self.names
        }
        missing = [n for n in self.names if n not in lrs and n != "times"]
        if missing:
            raise ValidationError(f"learning rates missing for {missing}")
        # eps 1e-15 as in the reference 3DGS code: gradients of tiny Gaussians are tiny. The
        # fused kernel (CPU and CUDA, float32/64) is ~3x faster than the per-tensor loop.
        groups = [{"params": [self.params[n]], "lr": float(lrs[n]) if n != "times" else 0.0,
                   "name": n} for n in self.names]
        try:
            self.optimizer = torch.optim.Adam(groups, lr=0.0, eps=1e-15, fused=True)
        except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
            self.optimizer = torch.optim.Adam(groups, lr=0.0, eps=1e-15)

    @staticmethod
    def _parameter(name: str, value: Tensor) -> nn.Parameter:
        return nn.Parameter(value.contiguous(), requires_grad=name != "times")

    # ------------------------------------------------------------------ views
    @property
    def num_gaussians(self) -> int:
        return self.params["means"].shape[0]

    @property
    def scales(self) -> Tensor:
        return torch.exp(self.params["log_scales"])

    @property
    def opacities(self) -> Tensor:
        return torch.sigmoid(self.params["logit_opacities"])

    def gaussians(self) -> Gaussians:
        """The current Gaussians, activated and differentiable (no value checks: hot path)."""
        p = self.params
        sh = p["sh_dc"] if "sh_rest" not in p else torch.cat([p["sh_dc"], p["sh_rest"]], dim=1)
        return Gaussians(p["means"], p["quats"], torch.exp(p["log_scales"]),
                         torch.sigmoid(p["logit_opacities"]), sh, p.get("velocities"), p.get("times"),
                         check=False)

    def export(self) -> Gaussians:
        """Detached Gaussians with unit quaternions (what a PLY should hold)."""
        with torch.no_grad():
            g = self.gaussians().detach()
            quats = g.quats / g.quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            dyn = (g.velocities.clone(), g.times.clone()) if g.is_dynamic else (None, None)
            return Gaussians(g.means.clone(), quats, g.scales.clone(), g.opacities.clone(),
                             g.sh.clone(), *dyn, check=False)

    def set_lr(self, name: str, lr: float) -> None:
        for group in self.optimizer.param_groups:
            if group["name"] == name:
                group["lr"] = lr

    # ------------------------------------------------------------------ surgery
    def _swap(self, name: str, value: Tensor, state_fn) -> None:
        """Replace parameter ``name`` by ``value``; ``state_fn(moment) -> new moment``."""
        old = self.params[name]
        new = self._parameter(name, value)
        for group in self.optimizer.param_groups:
            if group["params"][0] is old:
                group["params"][0] = new
                break
        state = self.optimizer.state.pop(old, None)
        if state:
            for key in ("exp_avg", "exp_avg_sq"):
                state[key] = state_fn(state[key]).contiguous()
            self.optimizer.state[new] = state
        self.params[name] = new

    @torch.no_grad()
    def keep(self, mask: Tensor) -> None:
        """Keep only the Gaussians where ``mask [N]`` is true (parameters and Adam moments)."""
        for name in self.names:
            self._swap(name, self.params[name][mask], lambda m: m[mask])

    @torch.no_grad()
    def append(self, values: Mapping[str, Tensor]) -> None:
        """Append Gaussians given in pre-activation form (one tensor per name); zero moments."""
        for name in self.names:
            extra = values[name].to(self.params[name])

            def grow(m: Tensor, extra: Tensor = extra) -> Tensor:
                return torch.cat([m, torch.zeros_like(extra)], dim=0)

            self._swap(name, torch.cat([self.params[name], extra], dim=0), grow)

    @torch.no_grad()
    def select(self, index: Tensor) -> dict[str, Tensor]:
        """Pre-activation values of the Gaussians at ``index`` (copies)."""
        return {n: self.params[n][index].clone() for n in self.names}

    @torch.no_grad()
    def reset(self, name: str, value: Tensor) -> None:
        """Overwrite parameter ``name`` and zero its Adam moments (the opacity reset)."""
        self._swap(name, value.to(self.params[name]), torch.zeros_like)
