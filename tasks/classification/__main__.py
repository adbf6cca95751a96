"""`python -m tasks.classification ...` is `kts classification ...`."""

import sys

from shared.cli import run_task_command

if __name__ == "__main__":
    sys.exit(run_task_command("classification", sys.argv[1:]))
