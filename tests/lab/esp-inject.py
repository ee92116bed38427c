#!/usr/bin/env python3
"""Send one captured ESP packet again (replay), optionally altered, as an Ethernet frame on an interface.

Usage: esp-inject.py --pcap FILE --iface IF [--index N] [--flip esp-seq|icv|none] [--src-mac auto|MAC] [--dry-run]

  --pcap     classic pcap file (tcpdump -w), link type Ethernet; packet N (default 0) must be IPv4 or IPv6 + ESP
  --iface    interface to send on (lab: inj1, whose peer inj0 is a port of br0: the frame enters the bridge)
  --flip     esp-seq: XOR 0x40 into the most significant byte of the ESP sequence number. The packet is then new to
                      the receiver's anti-replay window (2^30 ahead of anything seen) and its ICV no longer
                      verifies, so a receiver following RFC 4303 3.4.3 must count an integrity failure (a byte
                      flipped in the ICV of an already received packet is a replay, dropped before the ICV check)
             icv:     XOR 0x01 into the last byte (the ICV)
             none:    send it unchanged (default): a replay
  --src-mac  source MAC of the frame: auto (default) = the sending interface's own MAC, so that the bridge does not
             learn the original sender's MAC on the injection port; "keep" leaves the captured one
Prints one line: what was sent (addresses, SPI, sequence number, length, change).
Standard library only (AF_PACKET socket); needs CAP_NET_RAW.
"""
import argparse
import socket
import struct
import sys


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        raise SystemExit(f"{path}: not a pcap file (too short)")
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        raise SystemExit(f"{path}: not a classic pcap file (magic {magic.hex()}; pcapng is not supported)")
    linktype = struct.unpack(end + "I", data[20:24])[0]
    if linktype != 1:
        raise SystemExit(f"{path}: link type {linktype}, expected 1 (Ethernet)")
    off, pkts = 24, []
    while off + 16 <= len(data):
        _, _, incl, orig = struct.unpack(end + "IIII", data[off:off + 16])
        off += 16
        if incl != orig:
            raise SystemExit(f"{path}: packet {len(pkts)} truncated by the snap length ({incl} of {orig} bytes)")
        pkts.append(bytearray(data[off:off + incl]))
        off += incl
    return pkts


def esp_offset(frame):
    """(offset of the ESP header, src, dst) or exits."""
    ethertype = struct.unpack("!H", frame[12:14])[0]
    l3 = 14
    if ethertype == 0x8100:  # one VLAN tag
        ethertype = struct.unpack("!H", frame[16:18])[0]
        l3 = 18
    if ethertype == 0x0800:
        ihl = (frame[l3] & 0x0F) * 4
        if frame[l3 + 9] != 50:
            raise SystemExit(f"not ESP: IPv4 protocol {frame[l3 + 9]}")
        return l3 + ihl, socket.inet_ntop(socket.AF_INET, bytes(frame[l3 + 12:l3 + 16])), \
            socket.inet_ntop(socket.AF_INET, bytes(frame[l3 + 16:l3 + 20]))
    if ethertype == 0x86DD:
        if frame[l3 + 6] != 50:
            raise SystemExit(f"not ESP: IPv6 next header {frame[l3 + 6]} (extension headers are not handled)")
        return l3 + 40, socket.inet_ntop(socket.AF_INET6, bytes(frame[l3 + 8:l3 + 24])), \
            socket.inet_ntop(socket.AF_INET6, bytes(frame[l3 + 24:l3 + 40]))
    raise SystemExit(f"not IPv4/IPv6: ethertype 0x{ethertype:04x}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pcap", required=True)
    ap.add_argument("--iface", required=True)
    ap.add_argument("--index", type=int, default=0)
    ap.add_argument("--flip", choices=("none", "esp-seq", "icv"), default="none")
    ap.add_argument("--src-mac", default="auto")
    ap.add_argument("--dry-run", action="store_true")
    a = ap.parse_args()

    pkts = read_pcap(a.pcap)
    if a.index >= len(pkts):
        raise SystemExit(f"{a.pcap} has {len(pkts)} packet(s), no packet {a.index}")
    frame = pkts[a.index]
    esp, src, dst = esp_offset(frame)
    spi, seq = struct.unpack("!II", frame[esp:esp + 8])
    change = "unchanged (replay)"
    if a.flip == "esp-seq":
        frame[esp + 4] ^= 0x40
        change = f"sequence number byte 0 flipped: {seq} -> {struct.unpack('!I', frame[esp + 4:esp + 8])[0]}"
    elif a.flip == "icv":
        frame[-1] ^= 0x01
        change = "last ICV byte flipped"
    s = None
    if not a.dry_run:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        s.bind((a.iface, 0))
    if a.src_mac == "auto":
        if s is not None:
            frame[6:12] = s.getsockname()[4][:6]
    elif a.src_mac != "keep":
        frame[6:12] = bytes.fromhex(a.src_mac.replace(":", ""))
    if s is not None:
        n = s.send(bytes(frame))
        if n != len(frame):
            raise SystemExit(f"sent {n} of {len(frame)} bytes")
    print(f"{'would send' if a.dry_run else 'sent'} {src} -> {dst} spi {spi:08x} seq {seq} "
          f"len {len(frame)} on {a.iface}: {change}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
