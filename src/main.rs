//! The `selfrepair` command line.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_logging(args.verbose);
    // A wasm run is one long poll (milliseconds of CPU on a worker thread).
    // Tokio's default checks for I/O and timers only every 61 polls, which
    // with both workers running wasm left the process jail's pipes unread for
    // ~300 ms; checking after every poll costs one epoll_wait per poll.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .event_interval(1)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(cli::dispatch(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
