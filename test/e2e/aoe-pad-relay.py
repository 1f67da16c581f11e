#!/usr/bin/env python3
"""Relay AoE frames (EtherType 0x88A2) between two interfaces, padding every
frame shorter than 60 bytes with zeros, as a real Ethernet NIC would.

veth/tap/bridges do not pad, and aoeping silently drops replies shorter than
60 bytes, so a target that sends 32-byte config responses (vblade) is
invisible to aoeping on a veth.  run-guest.sh puts this relay between the
bridge port and a second veth pair in the probe namespace so aoeping can still
be used; it reports separately whether aoeping works *without* it.

Usage: aoe-pad-relay.py IFACE_A IFACE_B   (runs until SIGTERM)
"""

import select
import signal
import socket
import sys

ETH_P_AOE = 0x88A2
PACKET_OUTGOING = 4
MIN_FRAME = 60


def open_iface(name: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_AOE))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    s.bind((name, ETH_P_AOE))
    return s


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    a, b = open_iface(sys.argv[1]), open_iface(sys.argv[2])
    peer = {a: b, b: a}
    padded = 0
    print(f"relaying {sys.argv[1]} <-> {sys.argv[2]}", flush=True)
    while True:
        ready, _, _ = select.select([a, b], [], [])
        for s in ready:
            data, addr = s.recvfrom(65536)
            if addr[2] == PACKET_OUTGOING:
                continue
            if len(data) < MIN_FRAME:
                data += bytes(MIN_FRAME - len(data))
                padded += 1
                if padded <= 5:
                    print(f"padded a {len(data)}-byte frame from {addr[0]}", flush=True)
            peer[s].send(data)


if __name__ == "__main__":
    sys.exit(main())
