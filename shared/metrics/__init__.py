"""shared/metrics."""
