"""pygame adapter for pygase."""
