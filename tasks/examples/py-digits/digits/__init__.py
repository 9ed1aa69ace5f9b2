from digits.count import digit_count

__all__ = ["digit_count"]
