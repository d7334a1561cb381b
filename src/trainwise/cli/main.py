"""Entry point of the ``trainwise`` command: discovers subcommand modules in this package."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import warnings
from types import ModuleType

import trainwise

__all__ = ["build_parser", "main"]

_NOT_COMMANDS = {"main", "_common"}


def _command_modules() -> list[ModuleType]:
    import trainwise.cli as pkg

    modules = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name in _NOT_COMMANDS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"trainwise.cli.{info.name}")
        if hasattr(module, "COMMAND"):
            modules.append(module)
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trainwise",
        description="Measure the gradient noise scale, plan batch size and learning rate, "
        "optimize, and curate training data.",
    )
    parser.add_argument("--version", action="version", version=f"trainwise {trainwise.__version__}")
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for module in _command_modules():
        path = module.COMMAND if isinstance(module.COMMAND, tuple) else (module.COMMAND,)
        subparsers = top
        for depth, name in enumerate(path[:-1]):
            key = " ".join(path[: depth + 1])
            if key not in groups:
                group = subparsers.add_parser(name, help=f"{name} subcommands")
                groups[key] = group.add_subparsers(dest=f"command_{depth + 1}", metavar="COMMAND")
            subparsers = groups[key]
        sub = subparsers.add_parser(path[-1], help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings from the library, as one line a user reads (no source line of ours)."""
    print(f"trainwise: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "_run", None)
    if run is None:
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return int(run(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"trainwise: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
