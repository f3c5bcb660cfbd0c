"""Tools for SEA-LION agents, installed as ``sealion_agents.tools``.

Each is a LangChain tool with an argument schema: ``DocumentSearch`` (passages with their
sources from a collection, so an agent can cite), ``Calculator`` (arithmetic without
``eval``) and ``CurrentTime`` (the date and time in a named time zone). Errors in their input
come back to the model as a message (``handle_tool_error``), never as a crash.
"""

from sealion_agents.tools.calculator import Calculator, calculate
from sealion_agents.tools.clock import CurrentTime, resolve_time_zone
from sealion_agents.tools.search import DocumentSearch

__all__ = ["Calculator", "CurrentTime", "DocumentSearch", "calculate", "resolve_time_zone"]
