"""The asyncio edge: one driver that moves the sans-IO protocol's datagrams through a socket and
one timer, and the Server, Client and Backend built on it.
"""
