"""The `w2vu` command: one subcommand per pipeline step, mirroring the library functions.

Each phase's commands live in `w2vu/cli/<phase>.py`, every command's options beside its handler.
User errors (`W2vuError`) print one clear line and exit with status 2; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from w2vu.cli import audio, decode, features, gan, model, report, selftrain, text
from w2vu.cli import eval as evaluation
from w2vu.cli.commands import LibraryDefault, resolve_defaults
from w2vu.errors import W2vuError
from w2vu.logs import setup_logging

log = logging.getLogger("w2vu")
PHASES = (audio, text, features, gan, evaluation, decode, selftrain, report, model)


def build_parser() -> argparse.ArgumentParser:
    """All subcommands and their arguments, phase by phase."""
    parser = argparse.ArgumentParser(prog="w2vu", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for phase in PHASES:
        for command in phase.COMMANDS:
            p = sub.add_parser(command.name, help=command.help, description=command.help)
            p.set_defaults(handler=command.handler)
            command.arguments(p)
            name_library_defaults(p)
    return parser


def name_library_defaults(parser: argparse.ArgumentParser) -> None:
    """Each library default in `--help` (looked up only when help is printed)."""
    for action in parser._actions:
        if isinstance(action.default, LibraryDefault) and "%(default)" not in (action.help or ""):
            action.help = f"{action.help or ''} (default %(default)s)".strip()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `w2vu` console script."""
    args = resolve_defaults(build_parser().parse_args(argv))
    setup_logging(args.verbose, args.command)
    try:
        status = args.handler(args)
    except W2vuError as e:
        log.error("%s: %s", args.command, e)
        return 2
    except OSError as e:  # a full disk or an unwritable folder: say where, not a traceback
        outputs = [e.filename] if e.filename else _output_paths(args)
        log.error("%s: cannot complete (%s) while writing %s; free space or fix permissions "
                  "there, then rerun (outputs are only ever renamed into place when complete)",
                  args.command, _os_error_cause(e, outputs), ", ".join(map(str, outputs)))
        return 2
    return status or 0  # a handler may return 1 (e.g. transcribe: some files failed)


def _os_error_cause(error: OSError, outputs: list[str]) -> str:
    """The error's reason; numpy's short-write errors carry none, so check the disk as well."""
    cause = error.strerror or str(error)
    for out in outputs:
        folder = Path(out).parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if shutil.disk_usage(folder).free < 1 << 20:
            return f"{cause}; No space left on device under {folder}"
    return cause


def _output_paths(args: argparse.Namespace) -> list[str]:
    """The values of a command's --out* arguments, to name them in an error."""
    paths: list[str] = []
    for name, value in vars(args).items():
        if name.startswith("out") and value is not None:
            paths += [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return paths


if __name__ == "__main__":
    sys.exit(main())
