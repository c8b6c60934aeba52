"""Benchmarks: HTTP throughput against a ceiling and a hand-written baseline, and library overheads."""
