"""The ``splatnet`` command: subcommands registered from one list, errors as one line on stderr."""

from __future__ import annotations

import argparse
import importlib
import sys

from splatnet.errors import one_line

# One module per subcommand, each exposing ``register(subparsers)`` which sets ``func``.
COMMANDS = [
    "splatnet.cli.info",
    "splatnet.cli.render",
    "splatnet.cli.reconstruct",
    "splatnet.cli.eval",
    "splatnet.cli.synth",
    "splatnet.cli.convert",
    "splatnet.cli.train",
    "splatnet.cli.optimize",
    "splatnet.cli.export",
    "splatnet.cli.edit",
    "splatnet.cli.batch",
    "splatnet.cli.view",
]


class Parser(argparse.ArgumentParser):
    """argparse with splatnet's error policy: a usage error is one line naming the option (plus
    where to find help), exit 2; an ``epilog`` may be a callable, called only when help is shown
    (so a costly one, such as the train config keys, does not slow every command down)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")

    def format_help(self) -> str:
        if callable(self.epilog):
            self.epilog = self.epilog()
        return super().format_help()


_DEBUG_HELP = "show the full traceback when a command fails"


def build_parser() -> argparse.ArgumentParser:
    """The ``splatnet`` parser. Imports no torch: subcommand modules import their heavy
    dependencies inside their ``func``, so ``--help`` and usage errors are fast."""
    from splatnet import __version__

    parser = Parser(
        prog="splatnet",
        description="Feed-forward 3D Gaussian splatting from multi-camera driving logs.",
    )
    parser.add_argument("--version", action="version", version=f"splatnet {__version__}")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    for p in sub.choices.values():
        # Accepted after the subcommand too; SUPPRESS: when absent there, the value given (or
        # not) before the subcommand stands.
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("splatnet: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's contract: one line, never a traceback
        if args.debug:
            raise
        print(f"splatnet {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
