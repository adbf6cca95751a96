"""Task packages. `TASKS` maps a task name to its module, imported lazily by the CLI."""

TASKS = {
    "classification": "tasks.classification",
    "detection": "tasks.detection",
    "seq2seq": "tasks.seq2seq",
    "embeddings": "tasks.embeddings",
    "style": "tasks.style",
    "faces": "tasks.faces",
}
