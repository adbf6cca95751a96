"""Training utilities shared by every task: config, CLI, callbacks, export, reporting.

Nothing here imports `tasks`; importing this package does not import Keras.
"""
