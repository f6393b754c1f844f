"""bench: load testing for HTTP and inference APIs with honest percentiles and an SLA gate."""

__version__ = "0.1.0"
