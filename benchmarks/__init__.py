"""Benchmarks of jwst_asteroid_step: injection-recovery against two baselines, and performance."""
