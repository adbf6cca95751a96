"""Backend-neutral data pipelines: sources, small pure ops, one dataset builder.

Nothing here imports `tasks` or Keras.
"""
