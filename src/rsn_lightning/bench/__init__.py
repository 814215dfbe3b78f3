"""The benchmark behind ``rsn-bench``: workloads, their measurements and the report."""
