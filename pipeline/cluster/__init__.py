"""Cluster jobs (SLURM batch scripts, Ray jobs) and how their results come home through DVC experiments."""
