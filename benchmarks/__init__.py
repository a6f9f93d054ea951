"""Benchmarks of cxr-explorer: build throughput, query latency, grounding speed-up, app timings, GPU figures.

Run ``python -m benchmarks.run [--smoke|--quick|--full] [--out FILE]``; see ``benchmarks/README.md``.
"""
