"""shared/retention."""
