"""`python -m tasks.seq2seq ...` is `kts seq2seq ...`."""

import sys

from shared.cli import run_task_command

if __name__ == "__main__":
    sys.exit(run_task_command("seq2seq", sys.argv[1:]))
