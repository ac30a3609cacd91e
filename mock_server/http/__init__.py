"""The HTTP layer: thin blueprints that parse, call the domain and answer the envelope."""
