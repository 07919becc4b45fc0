"""Benchmarks for `make bench`: each module measures one figure against its floor."""
