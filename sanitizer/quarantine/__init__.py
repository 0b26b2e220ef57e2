"""Quarantine zones, lossless moves and the SQL ledger."""
