"""The emulator's own tests (run with pytest from the repository root)."""
