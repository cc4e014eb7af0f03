"""Helpers for checking graphmeta: a slow per-task, per-node reference of the engine."""
