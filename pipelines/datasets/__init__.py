"""Dataset loaders that read local files (no network) into pipeline sources."""
