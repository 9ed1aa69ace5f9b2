//! One module per area; `common` holds what they share.

mod common;

mod bad_input;
mod forkserver;
mod hostile;
mod own_time;
