"""Actuators: they turn decisions into changes on an engine, one action per service at a time."""
