"""`python -m tasks.style ...` is `kts style ...`."""

import sys

from shared.cli import run_task_command

if __name__ == "__main__":
    sys.exit(run_task_command("style", sys.argv[1:]))
