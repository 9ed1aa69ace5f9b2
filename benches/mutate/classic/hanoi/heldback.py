from hanoi import hanoi


def play(n, moves):
    pegs = {1: list(range(n, 0, -1)), 2: [], 3: []}
    for a, b in moves:
        disc = pegs[a].pop()
        assert not pegs[b] or pegs[b][-1] > disc
        pegs[b].append(disc)
    return pegs


def test_moves_are_legal_and_minimal():
    for n in range(1, 9):
        moves = hanoi(n)
        assert len(moves) == 2 ** n - 1
        assert play(n, moves) == {1: [], 2: [], 3: list(range(n, 0, -1))}


def test_other_pegs():
    assert hanoi(2, 3, 2, 1) == [(3, 2), (3, 1), (2, 1)]
