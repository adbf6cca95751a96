"""`python -m tasks.embeddings ...` is `kts embeddings ...`."""

import sys

from shared.cli import run_task_command

if __name__ == "__main__":
    sys.exit(run_task_command("embeddings", sys.argv[1:]))
