"""Datasets: reading versions, contracts and lineage; editing contracts."""
