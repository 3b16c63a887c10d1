"""ebbflow: event-driven monitoring and auto-scaling for containers."""

__version__ = "0.1.0"
