"""The example service's own tests, written against dpa-mock's pytest fixtures."""
