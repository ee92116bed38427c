#!/usr/bin/env python3
"""A lossy, slow, reordering Ethernet wire between two interfaces, in user space.

This machine's kernel has neither sch_netem nor an nftables `queue`, so delay and reordering cannot be had from
the kernel. This process joins two interfaces of one network namespace (usually the switch ends of two veth pairs)
with AF_PACKET sockets and forwards every frame from one to the other after a delay: a base delay plus a random
jitter per frame, so that frames overtake each other (reordering). IKE datagrams (UDP port 500 or 4500 with a
non-ESP marker) can also be lost and duplicated at given rates. It counts what it did and writes the counts to a
JSON file when it gets SIGTERM.

Usage: wire.py IF_A IF_B --delay-ms 20 --jitter-ms 30 --ike-loss 0.05 --ike-dup 0.02 --seed 1 --stats FILE

A host's UDP checksum may still be left to the NIC (veth's checksum offload: the captured frame carries only the
pseudo-header sum), and the receiving host checks it: the wire computes the checksum of every IPv4 UDP datagram
it forwards. Everything else it forwards as it is (ESP has no checksum of its own; TCP and ICMP here travel inside
ESP).
"""
import argparse
import heapq
import json
import random
import select
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def is_ike(frame: bytes) -> bool:
    """An IPv4 UDP datagram to or from port 500, or to or from 4500 with the non-ESP marker (RFC 3948)."""
    if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00":
        return False
    ihl = (frame[14] & 0x0F) * 4
    if frame[14 + 9] != 17 or len(frame) < 14 + ihl + 8:
        return False
    sport, dport = struct.unpack_from("!HH", frame, 14 + ihl)
    if 500 in (sport, dport):
        return True
    if 4500 in (sport, dport):
        marker = frame[14 + ihl + 8 : 14 + ihl + 12]
        return marker == b"\x00\x00\x00\x00"
    return False


def fix_udp_checksum(frame: bytes) -> bytes:
    """The frame with the UDP checksum of its IPv4 datagram computed (others unchanged)."""
    if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00" or frame[14 + 9] != 17:
        return frame
    ihl = (frame[14] & 0x0F) * 4
    total = struct.unpack_from("!H", frame, 14 + 2)[0]
    udp = bytearray(frame[14 + ihl : 14 + total])
    if len(udp) < 8:
        return frame
    udp[6:8] = b"\x00\x00"
    pseudo = frame[14 + 12 : 14 + 20] + struct.pack("!BBH", 0, 17, len(udp))
    data = pseudo + bytes(udp) + (b"\x00" if len(udp) % 2 else b"")
    acc = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while acc >> 16:
        acc = (acc & 0xFFFF) + (acc >> 16)
    csum = (~acc & 0xFFFF) or 0xFFFF
    struct.pack_into("!H", udp, 6, csum)
    return frame[: 14 + ihl] + bytes(udp) + frame[14 + total :]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("if_a")
    ap.add_argument("if_b")
    ap.add_argument("--delay-ms", type=float, default=20.0)
    ap.add_argument("--jitter-ms", type=float, default=30.0)
    ap.add_argument("--ike-loss", type=float, default=0.05)
    ap.add_argument("--ike-dup", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--stats", required=True)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    socks = {}
    for name in (args.if_a, args.if_b):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((name, 0))
        s.setblocking(False)
        socks[name] = s
    other = {args.if_a: socks[args.if_b], args.if_b: socks[args.if_a]}
    by_fd = {s.fileno(): name for name, s in socks.items()}
    counts = {
        "frames": 0,
        "ike": 0,
        "ike_dropped": 0,
        "ike_duplicated": 0,
        "reordered": 0,
        "send_errors": 0,
    }
    queue = []  # (release time, sequence, out socket, frame)
    seq = 0
    last_sent_seq = {args.if_a: -1, args.if_b: -1}
    running = True

    def stop(*_):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    poller = select.poll()
    for s in socks.values():
        poller.register(s, select.POLLIN)

    while running:
        now = time.monotonic()
        timeout = 100
        if queue:
            timeout = max(0, int((queue[0][0] - now) * 1000))
        try:
            events = poller.poll(timeout)
        except InterruptedError:
            continue
        for fd, _ in events:
            name = by_fd[fd]
            s = socks[name]
            while True:
                try:
                    frame, addr = s.recvfrom(65535)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue  # our own transmission on this interface
                counts["frames"] += 1
                frame = fix_udp_checksum(frame)
                copies = 1
                if is_ike(frame):
                    counts["ike"] += 1
                    r = rng.random()
                    if r < args.ike_loss:
                        counts["ike_dropped"] += 1
                        continue
                    if r < args.ike_loss + args.ike_dup:
                        counts["ike_duplicated"] += 1
                        copies = 2
                now = time.monotonic()
                for _ in range(copies):
                    at = now + (args.delay_ms + rng.random() * args.jitter_ms) / 1000.0
                    heapq.heappush(queue, (at, seq, name, frame))
                    seq += 1
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, n, came_in, frame = heapq.heappop(queue)
            if n < last_sent_seq[came_in]:
                counts["reordered"] += 1
            last_sent_seq[came_in] = max(last_sent_seq[came_in], n)
            try:
                other[came_in].send(frame)
            except OSError:
                counts["send_errors"] += 1
    with open(args.stats, "w") as f:
        json.dump(counts, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
