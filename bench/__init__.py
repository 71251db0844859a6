"""Benchmarks of skyplan and skyctl at scale (and Terraform for comparison); they print numbers."""
