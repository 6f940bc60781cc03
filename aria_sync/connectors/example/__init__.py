"""An example inventory API: the smallest complete connector, and a template for new ones.

Not in the default catalogue; enable it with ``ARIA_SYNC_EXTRA_CONNECTORS=aria_sync.connectors.example``.
Its simulator is :mod:`aria_sync.simulators.example`.
"""

from aria_sync.connectors.example.connector import ExampleConnector
from aria_sync.connectors.registry import register

register(ExampleConnector())

__all__ = ["ExampleConnector"]
