"""`python -m mock_server` is the `dpa-mock` command."""

from mock_server.cli import main

main()
