"""Privacy: erasure of a data subject by key, and retention windows."""
