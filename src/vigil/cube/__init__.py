"""Metric extraction: OLAP cubes from transactions, extraction rules, error groups."""
