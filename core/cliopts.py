"""The command-line options that several commands share, defined once: ``-c CFG.yaml`` and ``-o Section.key=value``."""

from __future__ import annotations

import argparse

CONFIG_METAVAR = "CFG.yaml"
OVERRIDE_METAVAR = "Section.key=value"


def add_config_option(p: argparse.ArgumentParser, help: str, dest: str = "config_file", required: bool = False) -> None:
    """``-c/--config CFG.yaml``: the YAML config a command reads."""
    p.add_argument("-c", "--config", dest=dest, required=required, metavar=CONFIG_METAVAR, help=help)


def add_override_option(p: argparse.ArgumentParser, help: str, dest: str = "overrides") -> None:
    """``-o/--override Section.key=value``, repeatable: one config key each."""
    p.add_argument("-o", "--override", dest=dest, action="append", default=[], metavar=OVERRIDE_METAVAR, help=help)
