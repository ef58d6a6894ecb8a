"""Tools built on the public API: the ``pygase`` command line, the demo and the bot swarm."""
