"""Shipped reference data (CSV); each file states its source and licence in its header."""
