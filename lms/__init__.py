"""The LMS streaming server: the application package (config, CLI, node, edges, store)."""
