"""A player in its own process: joins a room and plays until killed.

Usage: python -m tests.programs.room_player PORT
Prints ``SEAT <client id> <room id>`` once seated, then ``STATUS <status>`` on each change.
"""

from __future__ import annotations

import sys
import time

from pygase_core import Client


def main(port: int) -> None:
    client = Client()
    client.connect_in_thread(port, "127.0.0.1", room="watched")
    print(f"SEAT {client.id} {client.room_id}", flush=True)
    status = client.status
    while True:
        if client.status is not status:
            status = client.status
            print(f"STATUS {status.value} {client.disconnect_reason or ''}".strip(), flush=True)
        time.sleep(0.02)


if __name__ == "__main__":
    main(int(sys.argv[1]))
