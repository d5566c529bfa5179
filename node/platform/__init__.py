"""The node's own province platform: the adapter interface and the node's side of it."""
