#!/usr/bin/env python3
"""The cells of the interop matrix (tests/interop/matrix.sh), one per line:

    PEER ROLE AUTH DH ESP NAT

full      every combination: 2 peers x 2 roles x 4 authentications x 4 DH groups x 3 ESP transforms x 3 NAT
          situations = 576 cells
pairwise  a subset in which every pair of values of any two dimensions that some peer can do appears in at least
          one cell (so every value of every dimension is tested too); chosen greedily, deterministic

Cells come out grouped by peer and by where the peer sits (on the link, or behind the NAT) so that the runner boots
each guest as few times as possible.

The pairwise choice leaves out what a peer is known to refuse (libreswan 4.10: DH 24 and ECDSA with IKEv1), so that
its cells test something; the full matrix runs those cells too and reports the peer's own reason.
"""
import itertools
import sys

DIMS = [
    ("peer", ["ss", "ls"]),
    ("role", ["hs", "peer"]),
    ("auth", ["psk", "p256", "p384", "rsa"]),
    ("dh", ["14", "24", "19", "20"]),
    ("esp", ["gcm", "sha1", "sha256"]),
    ("nat", ["none", "peer", "both"]),
]
# what a peer refuses before negotiating (its reasons are reported by the runner, in the peer's words)
KNOWN_REFUSALS = {("ls", "dh", "24"), ("ls", "auth", "p256"), ("ls", "auth", "p384")}
NAT_ORDER = {"none": 0, "peer": 1, "both": 2}


def refused(cell):
    return any((cell[0], name, cell[i]) in KNOWN_REFUSALS for i, (name, _) in enumerate(DIMS))


def pairs(cell):
    return {(i, cell[i], j, cell[j]) for i, j in itertools.combinations(range(len(cell)), 2)}


def pairwise(cells):
    doable = [c for c in cells if not refused(c)]
    uncovered = set().union(*(pairs(c) for c in doable))
    chosen = []
    while uncovered:
        best = max(doable, key=lambda c: len(pairs(c) & uncovered))
        chosen.append(best)
        uncovered -= pairs(best)
    return chosen


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else "full"
    cells = list(itertools.product(*(values for _, values in DIMS)))
    if which == "pairwise":
        cells = pairwise(cells)
    elif which != "full":
        sys.exit("usage: matrix-cells.py full|pairwise")
    # peer, then the guest's place (on the link for "none", behind the NAT for the others), then the rest
    cells.sort(key=lambda c: (DIMS[0][1].index(c[0]), c[5] != "none", NAT_ORDER[c[5]], c[1:5]))
    for c in cells:
        print(" ".join(c))


if __name__ == "__main__":
    main()
