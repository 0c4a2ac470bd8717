"""What the commands share, defined once: the ``-c CFG.yaml`` / ``-o Section.key=value`` options and running one.

:func:`check_override_spacing` catches ``-o Section.key value`` before argparse does.

:func:`run_command` is how a command runs: a user error
(:class:`segzoo.SegzooError`) prints one line on stderr and exits with its
status (2); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any, Callable, Sequence

from .errors import ConfigError, SegzooError

CONFIG_METAVAR = "CFG.yaml"
OVERRIDE_METAVAR = "Section.key=value"
_NUMBER = re.compile(r"^-\d")


def add_config_option(p: argparse.ArgumentParser, help: str, dest: str = "config_file", required: bool = False) -> None:
    """``-c/--config CFG.yaml``: the YAML config a command reads."""
    p.add_argument("-c", "--config", dest=dest, required=required, metavar=CONFIG_METAVAR, help=help)


def add_override_option(p: argparse.ArgumentParser, help: str, dest: str = "overrides") -> None:
    """``-o/--override Section.key=value``, repeatable: one config key each."""
    p.add_argument("-o", "--override", dest=dest, action="append", default=[], metavar=OVERRIDE_METAVAR, help=help)


def check_override_spacing(argv: Sequence[str]) -> None:
    """``-o Section.key value`` (a space where the ``=`` goes): a :class:`ConfigError` showing ``-o Section.key=value``.

    Without this check argparse takes ``value`` for a stray argument and prints
    only the usage; the user's mistake is the missing ``=``.
    """
    for i, token in enumerate(argv[:-2]):
        item, following = argv[i + 1], argv[i + 2]
        if token not in ("-o", "--override") or "=" in item or "." not in item:
            continue
        if not following.startswith("-") or _NUMBER.match(following):
            raise ConfigError(
                f"-o {item} {following}: an override is one argument, key=value; write -o {item}={following}"
            )


def run_command(name: str, runner: Callable[[Any], Any], args: Any) -> int:
    """``runner(args)`` as ``segzoo NAME``: its exit status, a user error as one line ``segzoo NAME: error: ...``."""
    try:
        return int(runner(args) or 0)
    except SegzooError as exc:
        print(f"segzoo {name}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("segzoo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `segzoo list-models | head`
        sys.stderr.close()
        return 0


def engine_options_of(args: Any) -> dict:
    """``create_model``'s ``engine_options`` from the predict flags (``--cpu-threads``, ``--no-onednn``, ``--precision``)."""
    options: dict = {}
    if getattr(args, "cpu_threads", None) is not None:
        options["cpu_threads"] = args.cpu_threads
    if getattr(args, "no_onednn", False):
        options["onednn"] = False
    if getattr(args, "precision", None):
        options["precision"] = args.precision
    return options
