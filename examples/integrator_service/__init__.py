"""A worked example: an integrator's service that runs DPA plans and records their status callbacks."""
