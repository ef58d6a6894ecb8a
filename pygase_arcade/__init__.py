"""arcade adapter for pygase."""
