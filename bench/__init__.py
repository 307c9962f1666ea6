"""Benchmarks (not timed tests): fake upstream, bare pass-through, load generator, report."""
