"""A free TCP port on the loopback interface, for services the tests start."""

from bench.service.local_servers import free_port

__all__ = ["free_port"]
