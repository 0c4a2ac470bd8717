"""The script ``paddle.distributed.launch`` starts in every training process (see ``distributed.py``).

The launcher runs a file, not a module; this file runs ``segzoo train`` with
the arguments the launcher passes on (``train -c <output>/launch/config.yaml``),
reaching the training command directly rather than through the top-level CLI.
Errors print as the CLI prints them (``segzoo train: error: ...``, exit 2), which
is the line :func:`segzoo.training.distributed.launch` reports.
"""

import argparse
import sys

from segzoo.cliopts import run_command
from segzoo.training.commands import add_arguments_train, run_train


def main(argv=None) -> int:
    """``segzoo train ARGS`` in a launched process; ``argv`` may start with the command name ``train``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:
        argv = argv[1:]
    parser = argparse.ArgumentParser(prog="segzoo train")
    add_arguments_train(parser)
    args = parser.parse_args(argv)
    return run_command("train", run_train, args)


if __name__ == "__main__":
    sys.exit(main())
