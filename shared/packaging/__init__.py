"""shared/packaging."""
