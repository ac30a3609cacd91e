"""The contract-test kit: judges the emulator or any deployment of the DPA platform API against the document."""
