"""Tools for SEA-LION agents."""
