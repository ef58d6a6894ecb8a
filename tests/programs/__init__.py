"""Programs the tests start as separate processes, as a user would run a server."""
