"""Node implementations; importing this package registers them all."""

from inference.runtime.nodes import basic, filters, io_nodes  # noqa: F401
