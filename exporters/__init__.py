"""Outputs: each one a folder with `plugin` in its `__init__`, fed by its own bus subscription."""
