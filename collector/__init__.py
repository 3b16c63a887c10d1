"""Inputs: each one a folder with `plugin` in its `__init__`, built on `base.PollingInput`."""
