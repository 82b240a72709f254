"""The training configuration: typed dataclasses with defaults and one-line docstrings.

``TrainConfig`` (= ``TrainConfigBase`` + ``model: SplatNetConfig``) is what ``configs/*.yaml``
and ``KEY=VALUE`` arguments override (``splatnet.config_io``); ``splatnet train --help`` lists
every field. ``lr_at`` is the learning-rate schedule, a pure function of the step.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace

from splatnet.errors import ValidationError
from splatnet.models.config import SplatNetConfig


@dataclass
class StageConfig:
    """One phase of the size curriculum."""

    until_step: int = 0
    """This stage applies to steps < until_step (the last stage also covers every later step)."""
    size: tuple[int, int] = (64, 112)
    """Image size (height, width) of context and target views in this stage."""
    depth_weight: float | None = None
    """LiDAR/ground-truth depth loss weight in this stage (null: loss.depth_weight)."""


@dataclass
class SyntheticConfig:
    """Clips made on the fly by ``splatnet.clip.synth.generate`` (cached; one clip per seed)."""

    seeds: list[int] = field(default_factory=lambda: list(range(8)))
    """Generator seeds, one clip each; the same seed always gives the same clip."""
    seed_range: list[int] = field(default_factory=list)
    """``[start, stop]``: seeds ``start … stop − 1`` as well (for thousands of clips)."""
    cameras: int = 6
    """Rig cameras per generated clip."""
    frames: int = 3
    """Frames per generated clip."""
    size: tuple[int, int] = (128, 224)
    """Image size (height, width) the generator renders at (views are resized from it)."""
    targets: int = 2
    """Held-out 'target'-role cameras per clip, beside the rig (novel-view supervision)."""
    cache_dir: str = "~/.cache/splatnet/synthetic"
    """Where generated clips are kept (one directory per seed and setting)."""
    realism: str = "none"
    """Camera realism preset of the generator (none, real, varied: see splatnet.clip.synth)."""
    workers: int = 1
    """Processes that render missing clips in parallel (the generator is CPU-bound)."""
    weight: float | None = None
    """Share of samples drawn from these clips (null: in proportion to their number of clips)."""

    def all_seeds(self) -> list[int]:
        """``seeds`` then the ``seed_range`` ones not already listed."""
        extra = range(*self.seed_range) if self.seed_range else range(0)
        return list(dict.fromkeys([*self.seeds, *extra]))


@dataclass
class SourceConfig:
    """A named group of clip directories, sampled with one weight (e.g. one real dataset)."""

    name: str = "clips"
    """Name of the group (in logs and errors)."""
    clips: list[str] = field(default_factory=list)
    """Clip directories of the group."""
    weight: float | None = None
    """Share of samples drawn from the group (null: in proportion to its number of clips)."""


@dataclass
class DataConfig:
    """Where samples come from and what a sample holds."""

    clips: list[str] = field(default_factory=list)
    """Clip directories to train on (see docs/clip-format.md)."""
    sources: list[SourceConfig] = field(default_factory=list)
    """More groups of clips, each with its own sampling weight (beside ``clips``)."""
    synthetic: SyntheticConfig | None = None
    """Generate synthetic clips instead of (or besides) ``clips`` (null: off)."""
    batch_size: int = 1
    """Global batch size (samples per optimiser step), split evenly across DDP ranks."""
    micro_batch: int = 1
    """Samples per forward pass on one rank; gradients accumulate over the rank's share."""
    prefetch: bool = True
    """Load the next step's samples in a background thread while this step computes."""
    context_frames: int = 2
    """Consecutive frames whose rig cameras are the network's input."""
    target_views: int = 2
    """Views to render and compare per sample (other frames, held-out 'target' cameras)."""
    target_camera_prob: float = 0.5
    """Chance that a target is a 'target'-role camera (when the clip has any) rather than a rig
    camera at a frame outside the context window."""
    size: tuple[int, int] = (64, 112)
    """Image size (height, width) when ``curriculum`` is empty."""
    curriculum: list[StageConfig] = field(default_factory=list)
    """Size stages in step order (empty: ``size`` throughout)."""
    sizes: list[tuple[int, int]] = field(default_factory=list)
    """Train over several input sizes: each step draws one of these (height, width) uniformly,
    a pure function of ``seed`` and the step, in place of the stage's size (empty: the stage's
    size, one size per stage)."""
    seed: int = 0
    """Seed of the sample order and view choice (a sample is a pure function of seed and index)."""

    def stage_at(self, step: int) -> StageConfig:
        """The curriculum stage of ``step``, with the step's size when ``sizes`` is set."""
        stage = None
        for s in self.curriculum:
            if step < s.until_step:
                stage = s
                break
        if stage is None:
            stage = self.curriculum[-1] if self.curriculum else StageConfig(until_step=0,
                                                                            size=self.size)
        if self.sizes:
            stage = replace(stage, size=tuple(self.sizes[size_index(self.seed, step,
                                                                    len(self.sizes))]))
        return stage


def size_index(seed: int, step: int, count: int) -> int:
    """Which of ``count`` sizes step ``step`` of a run seeded ``seed`` trains at: uniform, and a
    pure function of (seed, step) (so resuming and the prefetching loader agree)."""
    return random.Random(f"splatnet-size:{seed}:{step}").randrange(count)


@dataclass
class LrScaleConfig:
    """A learning-rate multiplier for the parameters whose name starts with ``prefix``."""

    prefix: str = ""
    """Start of the parameter names (as ``model.named_parameters()`` gives them), e.g.
    ``colour_affine.``."""
    scale: float = 1.0
    """Their learning rate is ``scale ×`` the schedule's."""


@dataclass
class OptimConfig:
    """AdamW and gradient clipping."""

    lr: float = 3e-4
    """Peak learning rate."""
    min_lr: float = 1e-5
    """Learning rate at the end of the cosine decay."""
    betas: tuple[float, float] = (0.9, 0.99)
    """AdamW betas."""
    weight_decay: float = 0.02
    """AdamW decoupled weight decay (matrices and convolution kernels only, not biases/norms)."""
    eps: float = 1e-8
    """AdamW epsilon."""
    grad_clip: float = 0.5
    """Clip the global gradient norm to this (0: no clipping)."""
    bf16: bool = True
    """bfloat16 autocast on CUDA (ignored on CPU, which always trains in float32)."""
    find_unused_parameters: bool = False
    """DDP: allow parameters that get no gradient in a step (slower; needed for optional heads)."""
    lr_scales: list[LrScaleConfig] = field(default_factory=list)
    """Learning-rate multipliers by parameter-name prefix (the first that matches), e.g. a module
    new to a fine-tuned model: ``[{prefix: colour_affine., scale: 100}]`` (empty: one rate)."""


@dataclass
class ScheduleConfig:
    """Steps and the learning-rate schedule (linear warm-up, then cosine to min_lr)."""

    steps: int = 10000
    """Total optimiser steps."""
    warmup_steps: int = 300
    """Linear warm-up steps from lr/warmup_steps to lr."""


@dataclass
class LossConfig:
    """Weights of the training loss (see splatnet.train.task and splatnet.losses)."""

    photometric_weight: float = 1.0
    """Weight of the target-view photometric loss (1 − s)·L1 + s·(1 − SSIM)."""
    ssim_weight: float = 0.2
    """s: the SSIM share of the photometric loss."""
    context_weight: float = 0.25
    """Weight of the photometric loss on the context views themselves."""
    depth_weight: float = 1.0
    """L1 on inverse depth between the depth maps (final + coarse) and LiDAR of the context views."""
    render_depth_weight: float = 0.1
    """L1 on inverse rendered depth at target views where LiDAR depth is known."""
    sky_weight: float = 0.1
    """L1 between rendered alpha and 1 − sky mask at target views (where masks exist)."""
    sky_prob_weight: float = 0.1
    """Binary cross-entropy of the head's sky probability against context sky masks."""
    smooth_weight: float = 0.001
    """Edge-aware smoothness of the predicted inverse depth (Monodepth2)."""
    opacity_weight: float = 0.0
    """Mean-opacity sparsity prior."""
    scale_weight: float = 0.0
    """Penalty on needle-like Gaussians (max/min axis ratio above 10)."""


@dataclass
class EvalConfig:
    """Periodic held-out evaluation (rank 0; splatnet.pipeline.evaluate.evaluate_clip on each clip)."""

    every: int = 0
    """Evaluate every this many steps and at the end (0: never)."""
    clips: list[str] = field(default_factory=list)
    """Clip directories never used for training."""
    synthetic_seeds: list[int] = field(default_factory=list)
    """Synthetic clips rendered with data.synthetic's settings; must not be training seeds."""
    size: tuple[int, int] | None = None
    """(height, width) to evaluate at (null: the curriculum's size at that step)."""


@dataclass
class LogConfig:
    """Outputs: run directory, metrics, checkpoints."""

    dir: str = "runs/default"
    """Run directory: config.yaml, metrics.jsonl, checkpoints/, tensorboard/."""
    every: int = 10
    """Log metrics every this many steps."""
    checkpoint_every: int = 500
    """Write a checkpoint every this many steps (and at the end; 0: only at the end)."""
    keep: int = 3
    """Checkpoints to keep (0: all)."""
    flush_seconds: float = 30.0
    """Rewrite metrics.jsonl (atomically) at most this often, and at checkpoints and the end."""
    tensorboard: bool = True
    """Also write TensorBoard events when the tensorboard package is installed."""
    progress: bool = True
    """Show a tqdm progress bar (rank 0)."""


@dataclass
class TrainConfigBase:
    """Everything but the network: subclasses add ``model: <the architecture's config>``."""

    arch: str = "splatnet"
    """Registered model architecture (splatnet.io.checkpoint.register_model)."""
    data: DataConfig = field(default_factory=DataConfig)
    """Training data."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimiser."""
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    """Steps and learning-rate schedule."""
    loss: LossConfig = field(default_factory=LossConfig)
    """Loss weights."""
    log: LogConfig = field(default_factory=LogConfig)
    """Logging and checkpoints."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Held-out evaluation during training."""
    seed: int = 0
    """Seed of parameter initialisation and of the per-step RNG streams."""
    device: str = "auto"
    """'auto' (CUDA when available, else CPU), 'cpu' or 'cuda'."""
    threads: int = 0
    """torch intra-op threads per process (0: torch's default)."""
    init: str | None = None
    """Start from these weights (a model file, a checkpoint or 'default': the shipped model) with
    a fresh optimiser and schedule: fine-tuning. Must match ``model``. Ignored when resuming."""

    def __post_init__(self) -> None:
        _check_positive("schedule.steps", self.schedule.steps)
        _check_positive("data.batch_size", self.data.batch_size)
        _check_positive("data.micro_batch", self.data.micro_batch)
        _check_positive("log.every", self.log.every)
        if self.schedule.warmup_steps < 0:
            raise ValidationError("schedule.warmup_steps: must be >= 0")
        _check_optim(self.optim)
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValidationError(f"device: expected auto, cpu or cuda, got {self.device!r}")
        steps = [s.until_step for s in self.data.curriculum]
        if steps != sorted(steps):
            raise ValidationError(f"data.curriculum: until_step must increase, got {steps}")
        for i, s in enumerate(self.data.curriculum):
            if min(s.size) <= 0:
                raise ValidationError(f"data.curriculum[{i}].size: must be positive")
        for i, size in enumerate(self.data.sizes):
            if len(size) != 2 or min(size) <= 0:
                raise ValidationError(f"data.sizes[{i}]: expected [height, width], both positive, "
                                      f"got {list(size)}")
        if self.eval.synthetic_seeds:
            if self.data.synthetic is None:
                raise ValidationError("eval.synthetic_seeds: needs data.synthetic (its settings)")
            leak = sorted(set(self.eval.synthetic_seeds) & set(self.data.synthetic.all_seeds()))
            if leak:
                raise ValidationError(f"eval.synthetic_seeds: {leak} are also training seeds")
        for i, src in enumerate(self.data.sources):
            _check_weight(f"data.sources[{i}].weight", src.weight)
        syn = self.data.synthetic
        if syn is not None:
            _check_weight("data.synthetic.weight", syn.weight)
            _check_positive("data.synthetic.workers", syn.workers)
            r = syn.seed_range
            if r and (len(r) != 2 or not 0 <= r[0] < r[1]):
                raise ValidationError(f"data.synthetic.seed_range: expected [start, stop] with "
                                      f"0 <= start < stop, got {list(r)}")
        if syn is not None and syn.realism not in ("none", "real", "varied"):
            raise ValidationError(f"data.synthetic.realism: expected none, real or varied, got "
                                  f"{syn.realism!r}")
        trained = set(self.data.clips) | {c for src in self.data.sources for c in src.clips}
        leak_clips = sorted(set(self.eval.clips) & trained)
        if leak_clips:
            raise ValidationError(f"eval.clips: {leak_clips} are also training clips")


@dataclass
class TrainConfig(TrainConfigBase):
    """A full training run of SplatNet."""

    model: SplatNetConfig = field(default_factory=SplatNetConfig)
    """The network (splatnet.models.SplatNetConfig)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        stride = self.model.head.stride
        for i, size in enumerate(self.data.sizes):
            if size[0] % stride or size[1] % stride:
                raise ValidationError(f"data.sizes[{i}]: {list(size)} is not divisible by the "
                                      f"Gaussian stride model.head.stride={stride}")


def _check_optim(o: OptimConfig) -> None:
    """Each field on its own first, then how they relate: the error names the field that is
    wrong (``optim.lr=-1`` is about lr, not about min_lr being above it)."""
    for name in ("lr", "min_lr", "eps", "weight_decay", "grad_clip"):
        v = getattr(o, name)
        if not math.isfinite(v):
            raise ValidationError(f"optim.{name}: must be a finite number, got {v}")
    if o.lr < 0:  # 0 is allowed: a run that must not move the weights (tests use it)
        raise ValidationError(f"optim.lr: must be >= 0, got {o.lr}")
    if o.min_lr < 0:
        raise ValidationError(f"optim.min_lr: must be >= 0, got {o.min_lr}")
    if not all(math.isfinite(b) and 0 <= b < 1 for b in o.betas):
        raise ValidationError(f"optim.betas: each must be in [0, 1), got {list(o.betas)}")
    if o.eps <= 0:
        raise ValidationError(f"optim.eps: must be > 0, got {o.eps}")
    if o.weight_decay < 0:
        raise ValidationError(f"optim.weight_decay: must be >= 0, got {o.weight_decay}")
    if o.grad_clip < 0:
        raise ValidationError(f"optim.grad_clip: must be >= 0 (0: no clipping), got {o.grad_clip}")
    if o.min_lr > o.lr:
        raise ValidationError(f"optim.min_lr: must be <= optim.lr ({o.lr}), got {o.min_lr}")
    for i, ls in enumerate(o.lr_scales):
        if not isinstance(ls.prefix, str) or not ls.prefix:
            raise ValidationError(f"optim.lr_scales[{i}].prefix: expected a parameter-name "
                                  f"prefix, got {ls.prefix!r}")
        if not math.isfinite(ls.scale) or ls.scale <= 0:
            raise ValidationError(f"optim.lr_scales[{i}].scale: must be a finite number > 0, "
                                  f"got {ls.scale}")


def _check_weight(name: str, w: float | None) -> None:
    """A source's sampling weight: null, or a finite number >= 0."""
    if w is not None and not (math.isfinite(w) and w >= 0):
        raise ValidationError(f"{name}: must be a number >= 0 (or null), got {w}")


def _check_positive(name: str, v: int) -> None:
    if v <= 0:
        raise ValidationError(f"{name}: must be positive, got {v}")


def lr_at(step: int, optim: OptimConfig, schedule: ScheduleConfig) -> float:
    """Learning rate of ``step`` (0-based): linear warm-up, then cosine from lr to min_lr."""
    warm = schedule.warmup_steps
    if step < warm:
        return optim.lr * (step + 1) / warm
    span = max(schedule.steps - warm, 1)
    t = min(max(step - warm, 0) / span, 1.0)
    return optim.min_lr + 0.5 * (optim.lr - optim.min_lr) * (1.0 + math.cos(math.pi * t))
