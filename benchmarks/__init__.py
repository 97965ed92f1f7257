"""mwkit's benchmarks: ``python -m benchmarks [--quick] [--only N,...]`` (see run.py)."""
