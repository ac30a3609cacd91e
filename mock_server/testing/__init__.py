"""Helpers for testing against dpa-mock: a scriptable callback receiver and a server launcher."""
