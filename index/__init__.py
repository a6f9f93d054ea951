"""The offline index job: corpus readers and presets, decode workers, embedding, resumable chunks, finalisation,
sharding and merging. Entry point: :func:`index.runner.run_build` (``cxr-explorer build``)."""
