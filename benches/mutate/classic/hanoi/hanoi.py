"""Towers of Hanoi."""


def hanoi(n, src=1, via=2, dst=3):
    """The moves (from, to) that carry n discs from peg src to peg dst."""
    if n == 0:
        return []
    moves = hanoi(n - 1, src, dst, via)
    moves.append((src, dst))
    moves.extend(hanoi(n - 1, via, src, dst))
    return moves
