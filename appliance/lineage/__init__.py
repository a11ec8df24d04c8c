"""Lineage: the graph walk and the node grammar behind ``GET /api/v1/lineage/{node}``.

The edges themselves are written by each service in the transaction of what
they describe (SQL in :mod:`appliance.store.lineage`); :mod:`.service` walks them.
"""
