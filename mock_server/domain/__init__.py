"""The emulator's domain: no Flask, no sockets, no wall clock — time and transport are injected."""
