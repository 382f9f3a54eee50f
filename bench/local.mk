# Benchmarks: always compiled so they cannot rot, never run by make check.
