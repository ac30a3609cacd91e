"""dpa-mock: an offline emulator of the DPA process-plan (预案) platform API (see mock_server.app.create_app)."""
