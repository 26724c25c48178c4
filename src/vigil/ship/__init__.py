"""Shipping existing logs to a running Vigil: reading log files and importing them."""
