"""`dpa-mock proxy`: stands between a service and a deployment, judging every exchange (issue 15)."""
