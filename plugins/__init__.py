"""Built-in plugins of the harness (installed as ``harness_plugins``)."""
