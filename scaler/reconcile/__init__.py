"""Keeping plain-engine services at their desired replica count: the grace loop
(reconciler), the desired count (desired), what someone else's removals mean (intent),
and rolling ebbflow's copies onto a new configuration (rollover)."""

from .reconciler import Reconciler

__all__ = ["Reconciler"]
