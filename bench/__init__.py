"""Benchmarks for Rapport. `make bench-chat` runs bench.chat."""
