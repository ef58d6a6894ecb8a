"""Chase: a game of tag in rooms of up to six players, in pygame, arcade or as bots.

One player is the chaser (drawn red) and tags whoever they touch; the tagged player becomes the
chaser, and for a few seconds after a tag nobody can be tagged, so there are no instant tag-backs.
The chaser is a little faster than everyone else, so running only helps for so long.

Start a server, then any mix of clients, each in its own terminal::

    python -m examples.chase.server
    python -m examples.chase.pygame_client --name Ann
    python -m examples.chase.arcade_client --name Bob
    python -m examples.chase.bot --name Robo

All of them take ``--host`` and ``--port`` (default ``localhost`` and 8080). The server runs
any number of rooms, each a game of its own (``--max-players``, default 6, sets their size). A
client joins the oldest open room with a seat free, or opens a new one; ``--private`` opens a
private room, which nobody is matched into, and ``--room ID`` joins a room by its id (shown in
each window's header). ``arcade_client --lobby`` lists the open rooms to pick from.
"""
