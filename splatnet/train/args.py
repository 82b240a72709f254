"""The options ``splatnet train`` and ``python -m splatnet.train`` share, in a module without
torch so that building the ``splatnet`` parser (and ``--help``) stays fast."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options ``splatnet train`` and ``python -m splatnet.train`` share."""
    parser.add_argument("--config", metavar="YAML",
                        help="YAML file of overrides of the defaults (see configs/)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="further overrides, e.g. optim.lr=1e-3 data.batch_size=4 "
                             "(values are YAML)")
    parser.add_argument("--resume", metavar="PATH",
                        help="continue from a checkpoint: a run directory, its checkpoints/ "
                             "folder or one step directory (without --config, the checkpoint's "
                             "own config is used); 'auto': resume log.dir's latest checkpoint "
                             "when there is one, else start fresh (for restarted jobs)")
    parser.add_argument("--stop-at", type=int, metavar="STEP",
                        help="stop after this step (the schedule still spans schedule.steps), "
                             "e.g. to split a run into jobs")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config as YAML and exit")


def config_epilog(config_cls: type | None = None) -> str:
    """The config keys with their defaults and docs, for ``--help`` (``TrainConfig`` by default)."""
    from splatnet.config_io import format_help
    from splatnet.train.config import TrainConfig

    return "config keys (set in YAML or as KEY=VALUE):\n" + format_help(config_cls or TrainConfig)
