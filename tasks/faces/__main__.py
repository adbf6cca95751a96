"""`python -m tasks.faces ...` is `kts faces ...`."""

import sys

from shared.cli import run_task_command

if __name__ == "__main__":
    sys.exit(run_task_command("faces", sys.argv[1:]))
