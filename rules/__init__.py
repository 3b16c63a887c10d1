"""Policies and decisions: labels → validated policy → per-service windows → decision."""
