use rust_stats::{count_above, max, mean};

#[test]
fn mean_of_sample() {
    assert_eq!(mean(&[1, 2, 3, 6]), Some(3.0));
    assert_eq!(mean(&[]), None);
}

#[test]
fn max_of_sample() {
    assert_eq!(max(&[4, 9, 2]), Some(9));
    assert_eq!(max(&[]), None);
}

#[test]
fn count_above_is_strict() {
    assert_eq!(count_above(&[1, 2, 3, 4], 2), 2);
}

#[test]
fn count_above_empty() {
    assert_eq!(count_above(&[], 0), 0);
}
