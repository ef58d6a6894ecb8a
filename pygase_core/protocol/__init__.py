"""The sans-IO protocol: classes that take bytes and the current time and return bytes and small
frozen dataclasses. Nothing here opens a socket, reads a clock or imports asyncio.

``packets`` is the wire format; ``acks`` numbers and acknowledges packets and measures the link;
``reliable`` is the event channel; ``statesync`` sends and reassembles game state; ``connection``
is one session; ``endpoint`` is the handshake and the session table; ``crypto`` seals sessions;
``eventwire`` encodes game events; ``linksim`` simulates a bad network.
"""
