"""Sessions: each virtual user runs ordered steps, capturing values from responses into later steps.

``spec`` is what a session is (steps, captures, think times; validated by the
profile loader), ``runner`` runs sessions inside a worker, recording every
step into the worker's counters and its own per-step group.
"""
