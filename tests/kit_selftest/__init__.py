"""Self-tests of the contract-test kit: deliberately broken servers the kit must fail against."""
