"""worker/beat."""
