"""Capacity search: the most load (users, or requests per second) that still meets a profile's SLA.

``strategy`` says which level to probe next (pure), ``judge`` what one probe
says about the target (pure), ``driver`` runs the probes as ordinary runs.
"""

from bench.search.driver import Probe, SearchResult, search, search_report
from bench.search.strategy import OVER, parse_level

__all__ = ["OVER", "Probe", "SearchResult", "parse_level", "search", "search_report"]
