"""A cluster of pygase nodes on Redis, with an HTTP matchmaker that issues connect tokens.

* :mod:`~pygase_core.cluster.registry`: the keys and the atomic Redis scripts every node and
  matchmaker shares (presence with short expiries, seat reservations, the nodes' inboxes);
* :mod:`~pygase_core.cluster.node`: ``pygase node``, a :class:`~pygase_core.Server` that
  registers itself and takes reservations and room creations from matchmakers;
* :mod:`~pygase_core.cluster.reservations`: the seats a node holds for token holders;
* :mod:`~pygase_core.cluster.matchmaker`: ``pygase matchmaker``, the aiohttp service;
* :mod:`~pygase_core.cluster.seats`: the client's HTTP step (no extra dependency);
* :mod:`~pygase_core.cluster.monitor`: the ``/monitor`` page's data;
* :mod:`~pygase_core.cluster.agones`: the Agones game-server lifecycle of a node.

Everything but :mod:`~pygase_core.cluster.seats` needs the ``cluster`` extra
(``pip install "pygase[cluster]"``).
"""
