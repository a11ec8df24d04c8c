"""Data contracts (pandera polars schemas stored as YAML) and per-column summaries.

pandera is imported inside the functions that need it (it pulls in pandas and
takes about half a second), so importing this package stays cheap.
"""

from appliance.validate._frames import Frame, ParquetTable
from appliance.validate.contracts import (
    contract_columns,
    infer_contract,
    load_contract,
    load_profile,
    validate_frame,
)
from appliance.validate.summary import summarize

__all__ = [
    "Frame", "ParquetTable", "contract_columns", "infer_contract", "load_contract", "load_profile",
    "summarize", "validate_frame",
]
