"""Training the network: ``splatnet train`` and ``torchrun -m splatnet.train`` (docs/training.md).

- :mod:`.config`: the typed run config (``TrainConfig``: data, optimiser, schedule, loss, logging);
- :mod:`.data`: training samples cut from clips (context views in, target views out);
- :mod:`.task`: SplatNet's training objective, a table of weighted loss terms;
- :mod:`.loop`: the generic trainer (DDP, bf16, checkpoints, exact resume) and entry points;
- :mod:`.args`: the command-line arguments (torch-free, for ``--help``).

Names load on first use, so the CLI can build its parser without importing torch.
"""

from __future__ import annotations

from splatnet._lazy import lazy_exports

# name -> defining module (resolved by __getattr__)
_LAZY = {
    **dict.fromkeys(("DataConfig", "EvalConfig", "LogConfig", "LossConfig", "OptimConfig",
                     "ScheduleConfig", "StageConfig", "SyntheticConfig", "TrainConfig",
                     "TrainConfigBase", "lr_at"), "splatnet.train.config"),
    **dict.fromkeys(("DataSource", "DistInfo", "Evaluator", "Task", "Trainer",
                     "init_distributed", "main", "make_optimizer", "resolve_config", "run",
                     "run_from_args"), "splatnet.train.loop"),
    "add_arguments": "splatnet.train.args",
    "config_epilog": "splatnet.train.args",
    "SplatTask": "splatnet.train.task",
    "ClipSource": "splatnet.train.data",
    "SplatBatch": "splatnet.train.data",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
