"""Vigil: an operations telemetry system (metrics, logs, events, alerts) in one service."""

__version__ = "0.1.0"
