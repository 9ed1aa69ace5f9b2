from sieve import primes_up_to


def is_prime(k):
    return k >= 2 and all(k % d for d in range(2, int(k ** 0.5) + 1))


def test_matches_trial_division():
    for n in range(0, 400):
        assert primes_up_to(n) == [k for k in range(n + 1) if is_prime(k)]
