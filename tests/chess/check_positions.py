#!/usr/bin/env python3
"""Checks engine-derived chess facts against python-chess: each line of the JSONL file holds a
FEN, the legal moves the engine listed (go perft 1) and the FEN the engine gave after each of
them. Prints the number of positions checked, then one line per disagreement; exits 1 on any.

En passant squares are compared in python-chess's "xfen" mode (a square only when a pawn could
capture there, pins aside), the rule Stockfish follows when it writes a FEN."""
import json
import sys

import chess


def main():
    bad = 0
    n = 0
    with open(sys.argv[1]) as f:
        for line in f:
            p = json.loads(line)
            board = chess.Board(p["fen"])
            n += 1
            legal = sorted(m.uci() for m in board.legal_moves)
            if legal != sorted(p["moves"]):
                bad += 1
                print(f"moves differ at {p['fen']}: engine {sorted(p['moves'])} python-chess {legal}")
                continue
            for move, after in zip(p["moves"], p["after"]):
                b = board.copy()
                b.push_uci(move)
                want = b.fen(en_passant="xfen")
                if after != want:
                    bad += 1
                    print(f"{p['fen']} + {move}: engine {after} python-chess {want}")
    print(n)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
