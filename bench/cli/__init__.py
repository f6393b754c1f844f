"""The ``bench`` command (``app``) and its terminal rendering (``render``, ``html_report``)."""

from __future__ import annotations

from bench.gcpause import collector_paused


def main() -> None:
    """Console-script entry point: import the command with the cycle collector paused, then run it."""
    with collector_paused():
        from bench.cli.app import main as run_command
    run_command()
