"""What every phase's commands share: the registry each command joins beside its handler, and
the options and argument forms that recur (`--threads`, `--workers`, `name=value` lists)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass

from w2vu.errors import W2vuError

Handler = Callable[[argparse.Namespace], int | None]
Arguments = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Command:
    """One `w2vu` subcommand: its name, the function that adds its options, its handler."""

    name: str
    arguments: Arguments
    help: str
    handler: Handler


class Commands(list[Command]):
    """A phase's commands in `--help` order; `@COMMANDS(name, arguments, help)` registers one."""

    def __call__(self, name: str, arguments: Arguments, help_text: str
                 ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.append(Command(name, arguments, help_text, handler))
            return handler

        return register


@dataclass(frozen=True)
class LibraryDefault:
    """An option's default that lives in the library (`module:Class.field` of a dataclass, or
    `module:CONSTANT`), written there once. It is looked up only when used, so that building the
    parser imports no library (torch): `--help` prints it through `str`, and `main` resolves it
    after parsing."""

    owner: str

    def value(self) -> object:
        module, _, attribute = self.owner.partition(":")
        class_name, _, name = attribute.partition(".")
        owner = getattr(importlib.import_module(module), class_name)
        if not name:  # a module constant
            return owner
        (field,) = [f for f in dataclasses.fields(owner) if f.name == name]
        if field.default_factory is not dataclasses.MISSING:
            return field.default_factory()
        return field.default

    def __str__(self) -> str:
        return str(self.value())


def resolved(value: object) -> object:
    """A parsed value, with a library default looked up."""
    return value.value() if isinstance(value, LibraryDefault) else value


def resolve_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Look up every library default the command line left in place."""
    for name, value in vars(args).items():
        setattr(args, name, resolved(value))
    return args


def threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")


def note_failure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--note-failure", action="store_true",
                   help="a failure becomes a note in the outputs (scores.tsv reports it)")


def bracketing(a: argparse.Namespace, stage: str, outputs: list, inputs: list,
               run: Callable[[], object]) -> None:
    """Run a probe or baseline step; with --note-failure, a failure (its own or an input's)
    is written into its outputs as a note that scores.tsv reports, and the run goes on."""
    if not a.note_failure:
        run()
        return
    from w2vu.io.failed import run_or_note

    run_or_note(stage, outputs, inputs, run)


def workers(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")


def key_values(pairs: list[str], cast: Callable[[str], object]) -> tuple[list[str], list]:
    """Parse `name=value` arguments into parallel lists of names and cast values."""
    names, values = [], []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise W2vuError(f"expected name=value, got {pair!r}")
        names.append(name)
        values.append(cast(value))
    return names, values
