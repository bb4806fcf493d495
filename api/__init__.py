"""The HTTP API: validates requests, writes rows, enqueues work. It never runs a dump."""
