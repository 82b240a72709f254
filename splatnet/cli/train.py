"""``splatnet train --config configs/NAME.yaml [KEY=VALUE ...]``: train the network."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from splatnet.train.args import add_arguments

    p = sub.add_parser(
        "train", help="train the feed-forward network (configs/*.yaml, KEY=VALUE overrides)",
        description="Train SplatNet on clip directories or synthetic clips. Defaults come from "
                    "the TrainConfig dataclass; --config YAML and KEY=VALUE arguments override "
                    "them (unknown keys are errors). For several processes or machines run "
                    "`torchrun --nproc_per_node N -m splatnet.train ...` (docs/training.md).",
        # The config keys (every field of the torch-free config dataclasses) are listed only when
        # the help is shown: the parser in splatnet.cli calls a callable epilog.
        epilog=_epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)


def _epilog() -> str:
    from splatnet.train.args import config_epilog

    return config_epilog()


def run(args: argparse.Namespace) -> int:
    from splatnet.train import run_from_args

    return run_from_args(args)
