"""One module per wire protocol; each provides a ``DeviceClient`` implementation."""
