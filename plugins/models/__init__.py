"""Built-in model families: NODE, ANODE, SONODE, HBNODE, GHBNODE."""
