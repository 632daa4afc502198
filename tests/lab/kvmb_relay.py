"""Relay stdin/stdout to a TCP port: ssh's ProxyCommand into a lab host over the lab LAN.

Run inside the LAN namespace (``ip netns exec kvmb-<id>-lan python3 kvmb_relay.py HOST PORT``),
so the controller's SSH session reaches a host through the host's LAN NIC (eth1, or the
bridge it becomes) instead of its management NIC. Standard library only.
"""

from __future__ import annotations

import os
import select
import socket
import sys


def main(host, port):
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.settimeout(None)
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    open_in = True
    while True:
        ready = select.select([sock] + ([stdin] if open_in else []), [], [])[0]
        if stdin in ready:
            data = os.read(stdin, 65536)
            if data:
                sock.sendall(data)
            else:
                open_in = False
                sock.shutdown(socket.SHUT_WR)
        if sock in ready:
            data = sock.recv(65536)
            if not data:
                return 0
            os.write(stdout, data)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
