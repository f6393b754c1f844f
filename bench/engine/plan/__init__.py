"""Profile -> plan: the YAML read and validated into a frozen ``Profile``, and everything decided before a request is sent.

``profile`` (validation, CLI overrides), ``schedule`` (when each request is
due: rates, ramps, arrivals, a worker's share), ``replay`` (a recorded trace
as due times and requests), ``requests`` (the request bodies, datasets,
templates and checks, prepared once). Pure: nothing here opens a socket.
"""
