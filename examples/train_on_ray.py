"""Train on a Ray cluster: Ray Train's ``TorchTrainer`` runs splatnet's own training loop
(``python -m splatnet.train``'s ``main``) in ``--workers`` processes across the cluster's nodes.
Ray places the processes (GPUs by ``--gpu``), sets up the process group and the environment
torchrun would (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), and restarts the whole group after a
node failure (``--max-failures``); the loop resumes from its last checkpoint (pass ``--resume
auto``), exactly as under torchrun. Everything after ``--`` is the training command line.

    python examples/train_on_ray.py --workers 2 -- --config configs/debug.yaml data.batch_size=2
    python examples/train_on_ray.py --address auto --workers 16 --gpu --max-failures 3 -- \\
        --config configs/gpu_real.yaml device=cuda data.batch_size=32 --resume auto \\
        log.dir=/shared/runs/gpu_real

``log.dir`` (and the synthetic cache) must be on storage every node sees. Needs
``pip install 'ray[train]'``. docs/training.md says what this adds over torchrun.
"""

from __future__ import annotations

import argparse
import importlib
import sys


def train_loop(config: dict) -> None:
    """One Ray Train worker: the process group is up; run the training entry point."""
    module, _, name = config["entry"].partition(":")
    rc = getattr(importlib.import_module(module), name)(config["argv"])
    if rc:
        raise RuntimeError(f"training exited with status {rc}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--address", default=None, help="Ray cluster ('auto', HOST:PORT; default: "
                                                    "start a local one)")
    ap.add_argument("--workers", type=int, default=2, help="training processes (default 2)")
    ap.add_argument("--gpu", action="store_true", help="one GPU per process (NCCL)")
    ap.add_argument("--cpus-per-worker", type=float, default=1, help="CPUs each process reserves")
    ap.add_argument("--max-failures", type=int, default=0,
                    help="restarts of the worker group after a failure (default 0)")
    ap.add_argument("--storage", default=None,
                    help="Ray Train's own run records (default ~/ray_results); splatnet's "
                         "checkpoints go to log.dir")
    ap.add_argument("--entry", default="splatnet.train:main",
                    help="MODULE:FUNCTION taking the training argv (default splatnet.train:main)")
    ap.add_argument("train_argv", nargs=argparse.REMAINDER,
                    help="-- then the training command line")
    args = ap.parse_args(argv)
    train_argv = args.train_argv[1:] if args.train_argv[:1] == ["--"] else args.train_argv

    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    if not ray.is_initialized():
        ray.init(address=args.address, include_dashboard=False)
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"entry": args.entry, "argv": train_argv},
        torch_config=TorchConfig(backend="nccl" if args.gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=args.workers, use_gpu=args.gpu,
                                     resources_per_worker={"CPU": args.cpus_per_worker}),
        run_config=RunConfig(storage_path=args.storage,
                             failure_config=FailureConfig(max_failures=args.max_failures)),
    )
    trainer.fit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
