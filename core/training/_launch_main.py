"""The script ``paddle.distributed.launch`` starts in every training process (see ``distributed.py``).

The launcher runs a file, not a module; this file runs segzoo's command line.
"""

import sys

from segzoo.cli import main

if __name__ == "__main__":
    sys.exit(main())
