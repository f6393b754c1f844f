"""Workers -> samples: the processes that send, and what they ship to the parent.

``worker`` (one uvloop loop per process: the open-loop dispatcher, closed-loop
users, sessions), ``transports/`` (aiohttp, fast, h2), ``responses`` and
``sse`` (what a response says: checks, TTFT, tokens), ``samples`` (the
interval counters and bucket counts each worker ships, and their pipe
messages), ``chunks`` (per-request body timings), and the engines that start
workers and carry their reports: ``local`` (forked processes and pipes) and
``ray_engine`` (Ray actors).
"""
