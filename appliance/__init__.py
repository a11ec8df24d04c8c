"""The appliance: an embedded, single-node MLOps system.

The public surface is small on purpose: build an appliance from
:class:`Settings` with :func:`appliance.runtime.build`, talk to a running one
with :class:`appliance.client.ApplianceClient`.
"""

from appliance.config import Settings
from appliance.errors import ApplianceError

__all__ = ["ApplianceError", "Settings", "__version__"]
__version__ = "0.1.0"
