"""Helpers shared by the kit's plugins and test modules (no pytest hooks here)."""
