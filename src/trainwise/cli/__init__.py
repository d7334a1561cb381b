"""The ``trainwise`` command.

Each subcommand lives in its own module of this package and declares::

    COMMAND = "measure"            # or a tuple for a nested command, e.g. ("data", "sft")
    HELP = "one line for --help"
    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...

Modules are discovered, so adding a subcommand touches no shared file. Keep heavy imports
inside ``run``: every subcommand module is imported to build ``--help``.
"""

__all__ = ["main"]


def main(argv=None) -> int:  # pragma: no cover - thin wrapper
    from trainwise.cli.main import main as _main

    return _main(argv)
