"""pytest plugin (entry point pytest11) giving integrators `dpa_platform` and `callback_receiver` fixtures."""
