"""Node implementations; importing this package registers them all."""

from inference.runtime.nodes import basic, color, crop_to_mask, filters, io_nodes, masks, transform  # noqa: F401
