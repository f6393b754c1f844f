"""Samples -> aggregator -> report -> gate: what the parent makes of the workers' reports.

``aggregate`` (the exact merge into HdrHistograms, per-second series, live
snapshots), ``windows`` (sliding windows for window criteria), ``selfcheck``
(was the generator the bottleneck?), ``gate`` (the SLA verdict), ``report``
and ``exports`` (JSON, CSV, .hlog, JUnit, Markdown), ``compare`` (reports
read back and judged against each other). Pure but for the files written.
"""
