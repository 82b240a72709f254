"""Training: the optimisation loop, checkpoints, resume and DDP (config: ``train_config``).

Run it as ``splatnet train --config configs/NAME.yaml [key=value ...]`` on one process, or as
``torchrun --nproc_per_node N -m splatnet.train --config ... [key=value ...]`` for data-parallel
training (gloo on CPU, NCCL on GPU; see ``docs/training.md``).

The loop is generic over three small interfaces, so it can train the real network or a stand-in:

- a **model**: any ``nn.Module``, registered in ``splatnet.io.checkpoint`` (``register_model``) so
  that checkpoints name its architecture;
- a **data source** (``DataSource``): ``get(index, stage)`` returns the sample of global index
  ``index``, a pure function of the data seed and the index (so resuming and any number of
  ranks see exactly the same samples), and ``collate(items)`` stacks samples into a batch with
  a ``.to(device)`` method;
- a **task** (``Task``): ``loss(model, batch, step, stage)`` returns ``(scalar loss,
  {name: float metric})`` with the loss the *mean* over the batch's samples.

Determinism: step ``s`` uses samples ``s·B … s·B + B − 1`` of the global batch ``B`` (rank ``r``
of ``W`` takes the ``r``-th ``B/W`` of them), the learning rate is a pure function of ``s``, and
the global RNGs are re-seeded from ``(seed, s, rank)`` at the start of each step. A checkpoint
holds the parameters and the optimiser state, so ``--resume`` continues bit-exactly.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import Tensor, nn

from splatnet.config_io import from_dict, load_config, merge_overrides, to_dict
from splatnet.errors import ValidationError
from splatnet.io import checkpoint as ckpt_io
from splatnet.io.atomic import atomic_write_text
from splatnet.train.args import add_arguments, config_epilog
from splatnet.train.config import (
    OptimConfig,
    StageConfig,
    TrainConfig,
    TrainConfigBase,
    lr_at,
)

_log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- interfaces
class DataSource(Protocol):
    def get(self, index: int, stage: StageConfig) -> Any:
        """Sample number ``index`` (a pure function of the source's seed and ``index``)."""

    def collate(self, items: list[Any]) -> Any:
        """A batch of samples; must have ``.to(device)``."""


class Evaluator(Protocol):
    def __call__(self, model: nn.Module, step: int, stage: StageConfig) -> dict[str, float]:
        """Held-out metrics of ``model`` (in eval mode, under no_grad)."""


class Task(Protocol):
    def loss(self, model: nn.Module, batch: Any, step: int,
             stage: StageConfig) -> tuple[Tensor, dict[str, float]]:
        """``(scalar loss averaged over the batch, metrics)``."""


# ---------------------------------------------------------------------------- distributed
@dataclass
class DistInfo:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group torchrun describes in the environment (no-op for one process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        use_cuda = _want_cuda(device)
        if use_cuda:
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return info


def _want_cuda(device: str) -> bool:
    if device == "cuda" and not torch.cuda.is_available():
        raise ValidationError("device: 'cuda' requested but torch sees no CUDA device")
    return device == "cuda" or (device == "auto" and torch.cuda.is_available())


# ---------------------------------------------------------------------------- the trainer
class Trainer:
    """Optimises ``model`` on ``data`` with ``task``'s loss as ``cfg`` says; see ``fit``."""

    def __init__(self, cfg: TrainConfigBase, model: nn.Module, data: DataSource, task: Task,
                 dist_info: DistInfo | None = None, evaluate: Evaluator | None = None) -> None:
        self.cfg = cfg
        self.evaluate = evaluate
        self.dist = dist_info or DistInfo()
        if cfg.data.batch_size % self.dist.world_size:
            raise ValidationError(f"data.batch_size={cfg.data.batch_size} is not divisible by "
                                  f"the {self.dist.world_size} DDP ranks")
        self.device = torch.device(
            f"cuda:{self.dist.local_rank}" if _want_cuda(cfg.device) else "cpu")
        self.model = model.to(self.device)
        self.data = data
        self.task = task
        self.step = 0
        self.optimizer = make_optimizer(self.model, cfg.optim)
        self.run_dir = Path(cfg.log.dir).expanduser()
        self.ckpt_dir = self.run_dir / "checkpoints"
        self._metrics: list[dict] = []
        self._last_flush = time.monotonic()
        self._tb = None
        self._pool = None  # background loader (data.prefetch)
        self._end = cfg.schedule.steps
        self._pending: tuple[int, Any] | None = None

    # -------------------------------------------------------------- resume
    def resume(self, path: str | os.PathLike) -> int:
        """Load parameters, optimiser state, step and RNG states from a checkpoint."""
        ck = ckpt_io.load_checkpoint(path)
        model_cfg = getattr(self.cfg, "model", None)
        if model_cfg is None:
            raise ValidationError(f"{type(self.cfg).__name__} has no 'model' field")
        ckpt_io.check_same_architecture(ck, self.model, model_cfg)  # also loads the weights
        if ck.optim_state is None:
            raise ValidationError(f"{ck.path}: checkpoint has no optimizer state; it can "
                                  "initialise a model (load_model) but not resume training")
        try:
            self.optimizer.load_state_dict(ck.optim_state)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise ValidationError(f"{ck.path}: optimizer state does not fit this model: "
                                  f"{exc}") from None
        if isinstance(ck.trainer.get("rng"), dict):
            ckpt_io.set_rng_state(ck.trainer["rng"])
        self.step = ck.step
        if self.dist.is_main:
            self._metrics = [m for m in _read_jsonl(self.run_dir / "metrics.jsonl")
                             if isinstance(m.get("step"), int) and m["step"] <= self.step]
        return self.step

    # -------------------------------------------------------------- loop
    def fit(self, stop_at: int | None = None) -> nn.Module:
        """Train from ``self.step`` to ``schedule.steps`` (or ``stop_at``); returns the model."""
        cfg = self.cfg
        end = cfg.schedule.steps if stop_at is None else min(stop_at, cfg.schedule.steps)
        self._end = end
        model = self.model
        if self.dist.enabled:
            model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=cfg.optim.find_unused_parameters)
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / "config.yaml", _to_yaml(cfg))
            self._open_tensorboard()
        bar = self._progress(end)
        model.train()
        try:
            while self.step < end:
                metrics = self._train_step(model)
                self.step += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{metrics['loss']:.4f}", refresh=False)
                if self.step % cfg.log.every == 0 or self.step == end:
                    self._log(metrics)
                ev = cfg.eval.every
                if self.evaluate is not None and ev and (self.step % ev == 0 or self.step == end):
                    self._run_eval()
                every = cfg.log.checkpoint_every
                if (every and self.step % every == 0) or self.step == end:
                    self.save()
        finally:
            self._close_pool()
            if bar is not None:
                bar.close()
            if self.dist.is_main:
                self._flush_metrics()
                if self._tb is not None:
                    self._tb.close()
        return self.model

    def _train_step(self, model: nn.Module) -> dict[str, float]:
        cfg = self.cfg
        step = self.step
        _seed_step(cfg.seed, step, self.dist.rank)
        lr = lr_at(step, cfg.optim, cfg.schedule)
        for g in self.optimizer.param_groups:
            g["lr"] = lr * g["lr_scale"] if "lr_scale" in g else lr
        stage = cfg.data.stage_at(step)
        local = cfg.data.batch_size // self.dist.world_size
        chunks = self._chunks(step)
        batches = self._batches(step)
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, Any] = {}  # tensors until the end of the step (one device sync)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16,
                                  enabled=cfg.optim.bf16 and self.device.type == "cuda")
        for ci, (idx, batch) in enumerate(zip(chunks, batches)):
            batch = batch.to(self.device)
            sync = ci == len(chunks) - 1 or not self.dist.enabled
            ctx = model.no_sync() if not sync else contextlib.nullcontext()
            with ctx:
                with autocast:
                    loss, m = self.task.loss(model, batch, step, stage)
                if not bool(torch.isfinite(loss)):
                    raise FloatingPointError(f"step {step}: loss is {float(loss.detach())} "
                                             f"(metrics {m})")
                (loss * (len(idx) / local)).backward()
            for k, v in {"loss": loss.detach(), **m}.items():
                v = torch.as_tensor(v, dtype=torch.float32).to(self.device).reshape(())
                sums[k] = sums.get(k, 0.0) + v * (len(idx) / local)
        sums = dict(zip(sums, torch.stack(list(sums.values())).tolist()))
        params = [p for p in self.model.parameters() if p.grad is not None]
        if cfg.optim.grad_clip > 0:
            gnorm = float(torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip))
        else:
            gnorm = float(torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(p.grad) for p in params])))
        if not math.isfinite(gnorm):  # stop before a NaN update poisons the parameters
            raise FloatingPointError(f"step {step}: gradient norm is {gnorm} (loss "
                                     f"{sums.get('loss')})")
        self.optimizer.step()
        sums["grad_norm"] = gnorm
        sums["lr"] = lr
        return sums

    def _chunks(self, step: int) -> list[list[int]]:
        """This rank's sample indices of ``step``, in micro-batches."""
        d = self.cfg.data
        local = d.batch_size // self.dist.world_size
        first = step * d.batch_size + self.dist.rank * local
        return [list(range(i, min(i + d.micro_batch, first + local)))
                for i in range(first, first + local, d.micro_batch)]

    def _load(self, step: int) -> list[Any]:
        stage = self.cfg.data.stage_at(step)
        return [self.data.collate([self.data.get(i, stage) for i in idx])
                for idx in self._chunks(step)]

    def _batches(self, step: int) -> list[Any]:
        """The step's batches; with ``data.prefetch`` the next step's start loading meanwhile.

        Samples are pure functions of their index, so loading them early (in another thread)
        changes nothing but the wall time.
        """
        if not self.cfg.data.prefetch:
            return self._load(step)
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="splatnet-data")
        pending = self._pending if self._pending is not None and self._pending[0] == step \
            else (step, self._pool.submit(self._load, step))
        if step + 1 < self._end:
            self._pending = (step + 1, self._pool.submit(self._load, step + 1))
        else:
            self._pending = None
        return pending[1].result()

    def _close_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._pending = None

    # -------------------------------------------------------------- outputs
    def save(self) -> Path | None:
        """Write a checkpoint of the current step (rank 0 only; others wait)."""
        path = None
        if self.dist.is_main:
            path = ckpt_io.save_checkpoint(
                self.ckpt_dir, self.step, self.model, self.optimizer,
                {"config": to_dict(self.cfg), "rng": ckpt_io.rng_state(),
                 "world_size": self.dist.world_size},
                model_config=self.cfg.model, arch=self.cfg.arch, keep=self.cfg.log.keep)
            self._flush_metrics()
        if self.dist.enabled:
            dist.barrier()
        return path

    def _run_eval(self) -> None:
        """Rank 0 evaluates the unwrapped model (no DDP traffic); the other ranks go on and
        wait for it in the next step's gradient all-reduce."""
        if not self.dist.is_main:
            return
        stage = self.cfg.data.stage_at(self.step - 1)
        self.model.eval()
        try:
            with torch.no_grad():
                result = self.evaluate(self.model, self.step, stage)
        finally:
            self.model.train()
        row = {"step": self.step, "time": time.time(),
               **{f"eval_{k}": float(v) for k, v in result.items()}}
        self._metrics.append(row)
        if self._tb is not None:
            for k, v in result.items():
                self._tb.add_scalar(f"eval/{k}", float(v), self.step)
        self._flush_metrics()

    def _log(self, metrics: dict[str, float]) -> None:
        if self.dist.enabled:
            keys = sorted(metrics)
            # Ranks may report different metrics (e.g. a sample without sky masks): average
            # only when every rank has the same keys, else log rank 0's own values.
            code = zlib.crc32(",".join(keys).encode())
            probe = torch.tensor([code, -code], dtype=torch.int64, device=self.device)
            dist.all_reduce(probe, op=dist.ReduceOp.MAX)
            if int(probe[0]) == code and int(probe[1]) == -code:
                t = torch.tensor([metrics[k] for k in keys], dtype=torch.float64,
                                 device=self.device)
                dist.all_reduce(t)
                metrics = {k: float(v) / self.dist.world_size for k, v in zip(keys, t.tolist())}
                metrics["lr"] = lr_at(self.step - 1, self.cfg.optim, self.cfg.schedule)
            else:
                metrics = {**metrics, "rank0_only": 1.0}
        if not self.dist.is_main:
            return
        stage = self.cfg.data.stage_at(self.step - 1)
        row = {"step": self.step, "time": time.time(), "size": list(stage.size), **metrics}
        self._metrics.append(row)
        if self._tb is not None:
            for k, v in metrics.items():
                self._tb.add_scalar(f"train/{k}", v, self.step)
        if time.monotonic() - self._last_flush >= self.cfg.log.flush_seconds:
            self._flush_metrics()

    def _flush_metrics(self) -> None:
        # Rewritten whole through atomic_write: a crash never leaves a torn line.
        text = "".join(json.dumps(m, allow_nan=True) + "\n" for m in self._metrics)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / "metrics.jsonl", text)
        self._last_flush = time.monotonic()

    def _open_tensorboard(self) -> None:
        if not self.cfg.log.tensorboard:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard not installed: JSONL only
            return
        self._tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.step + 1)

    def _progress(self, end: int):
        if not (self.dist.is_main and self.cfg.log.progress) or self.step >= end:
            return None
        from tqdm import tqdm

        return tqdm(total=end, initial=self.step, desc="train", unit="step", dynamic_ncols=True)


def make_optimizer(model: nn.Module, optim: OptimConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices / kernels (ndim ≥ 2) only; a group's ``lr_scale``
    (``optim.lr_scales``, by parameter-name prefix) multiplies the schedule's rate."""
    decay, no_decay = [], []
    scaled: dict[int, tuple[list, list]] = {}  # lr_scales index -> (decay, no_decay)
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        which = next((i for i, ls in enumerate(optim.lr_scales) if name.startswith(ls.prefix)),
                     None)
        d, n = (decay, no_decay) if which is None else scaled.setdefault(which, ([], []))
        (d if p.ndim >= 2 else n).append(p)
    groups = [{"params": decay, "weight_decay": optim.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    for i in sorted(scaled):
        d, n = scaled[i]
        scale = float(optim.lr_scales[i].scale)
        groups += [{"params": ps, "weight_decay": wd, "lr_scale": scale}
                   for ps, wd in ((d, optim.weight_decay), (n, 0.0)) if ps]
    return torch.optim.AdamW(groups, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps)


def _seed_step(seed: int, step: int, rank: int) -> None:
    s = ((seed * 1_000_003 + step) * 1009 + rank) % (2**63 - 1)
    torch.manual_seed(s)
    random.seed(s)
    import numpy as np

    np.random.seed(s % 2**32)


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _to_yaml(cfg: Any) -> str:
    import yaml

    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


# ---------------------------------------------------------------------------- entry points
def resolve_config(config_cls: type, config: str | None, overrides: Sequence[str],
                   resume: str | None) -> Any:
    """Defaults ← ``config`` YAML ← (with ``resume`` and no ``config``: the checkpoint's) ← overrides."""
    if config is None and resume is not None:
        stored = ckpt_io.read_trainer_state(_ckpt_dir(resume)).get("config")
        if not isinstance(stored, dict):
            raise ValidationError(f"{resume}: the checkpoint's trainer.json has no 'config' "
                                  "mapping to resume from; pass --config")
        return from_dict(config_cls, merge_overrides(stored, overrides))
    if config is None:
        return load_config(config_cls, None, overrides)
    return load_config(config_cls, config, overrides)


def _ckpt_dir(path: str | os.PathLike) -> Path:
    """A run directory, its ``checkpoints`` folder or a step directory → a checkpoint location."""
    p = Path(path).expanduser()
    if (p / "checkpoints").is_dir() and not (p / "latest.json").exists():
        return p / "checkpoints"
    return p


def _init_weights(model: nn.Module, cfg: TrainConfigBase) -> None:
    """``init=``: the weights of ``cfg.init`` into ``model`` (``ckpt_io.init_weights``). A model
    whose config switches ``colour_affine`` on may start from weights made without it (e.g. the
    shipped model): the file's weights fill everything else and the colour matrices keep their
    initial identity, so the first step renders exactly as the file's model does."""
    try:
        ckpt_io.init_weights(model, cfg.model, cfg.init)
        return
    except ValidationError as exc:
        colour = getattr(cfg.model, "colour_affine", None)
        if colour is None or not colour.enabled:
            raise
        error = exc
    base_cfg = dataclasses.replace(cfg.model, colour_affine=dataclasses.replace(colour, enabled=False))
    base = ckpt_io.build_model(cfg.arch, base_cfg)
    try:
        ckpt_io.init_weights(base, base_cfg, cfg.init)
    except ValidationError:
        raise error from None
    missing, unexpected = ckpt_io.unwrap(model).load_state_dict(base.state_dict(), strict=False)
    if unexpected or not all(k.startswith("colour_affine.") for k in missing):
        raise error
    _log.info("init: %s has no colour_affine weights; they start at the identity", cfg.init)


def run(cfg: TrainConfigBase, *, resume: str | None = None, stop_at: int | None = None,
        model: nn.Module | None = None, data: DataSource | None = None,
        task: Task | None = None, dist_info: DistInfo | None = None,
        evaluate: Evaluator | None = None) -> nn.Module:
    """Train as ``cfg`` says; pieces not given are built from ``cfg`` (the real network)."""
    owns_group = dist_info is None and not dist.is_initialized()
    dist_info = dist_info or init_distributed(cfg.device)
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)  # same initial parameters on every rank
        if model is None:
            model = ckpt_io.build_model(cfg.arch, cfg.model)
        if cfg.init and resume is None:  # resuming restores the weights the run had reached
            if getattr(cfg, "model", None) is None:
                raise ValidationError("init: needs a config with a 'model' section to check the "
                                      "weights against")
            _init_weights(model, cfg)
        if data is None or task is None:
            from splatnet.train.data import build_data
            from splatnet.train.task import SplatTask

            data = data if data is not None else build_data(cfg)
            task = task if task is not None else SplatTask(cfg.loss)
        if evaluate is None and cfg.eval.every and dist_info.is_main and (
                cfg.eval.clips or cfg.eval.synthetic_seeds):
            from splatnet.train.data import ClipEvaluator

            evaluate = ClipEvaluator.from_config(cfg)
        trainer = Trainer(cfg, model, data, task, dist_info, evaluate)
        if resume is not None:
            trainer.resume(_ckpt_dir(resume))
        trained = trainer.fit(stop_at=stop_at)
        if owns_group and dist.is_initialized():
            # Every rank past its last collective before any tears the group down: a gloo rank
            # destroyed while a peer's work was still in flight aborted once ("terminate called
            # without an active exception"). Only on success: after an error a barrier would
            # wait for a rank that may never come.
            dist.barrier()
        return trained
    finally:
        if owns_group and dist.is_initialized():
            dist.destroy_process_group()


def main(argv: Sequence[str] | None = None, *, config_cls: type | None = None,
         model: nn.Module | None = None, data: DataSource | None = None,
         task: Task | None = None) -> int:
    """``python -m splatnet.train`` (what torchrun launches); see ``add_arguments``."""
    parser = argparse.ArgumentParser(
        prog="python -m splatnet.train", description=__doc__.split("\n\n")[0],
        epilog=config_epilog(config_cls), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_from_args(args, config_cls=config_cls, model=model, data=data, task=task)


def run_from_args(args: argparse.Namespace, *, config_cls: type | None = None,
                  model: nn.Module | None = None, data: DataSource | None = None,
                  task: Task | None = None) -> int:
    cls = config_cls or TrainConfig
    resume = args.resume
    if resume == "auto":  # the run's own directory if it has a checkpoint, else a fresh start
        cfg = resolve_config(cls, args.config, args.overrides, None)
        found = Path(cfg.log.dir).expanduser() / "checkpoints" / "latest.json"
        resume = str(found.parent) if found.is_file() else None
    else:
        cfg = resolve_config(cls, args.config, args.overrides, resume)
    if args.print_config:
        print(_to_yaml(cfg), end="")
        return 0
    run(cfg, resume=resume, stop_at=args.stop_at, model=model, data=data, task=task)
    return 0


