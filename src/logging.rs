//! Logging for lab's long-running processes (daemon, pod shim, DNS server):
//! `tracing` to stderr (each process's stderr is its log file), filtered by
//! `RUST_LOG` (or `LAB_LOG`), with `default` when neither is set.

use tracing_subscriber::EnvFilter;

/// Install the subscriber once per process; later calls do nothing.
pub fn init(default: &str) {
    let filter = EnvFilter::try_from_env("LAB_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The filter a daemon started with `lab up -v…` uses.
pub fn verbosity_filter(verbose: u8) -> Option<&'static str> {
    match verbose {
        0 => None,
        1 => Some("info,lab=debug"),
        _ => Some("debug,lab=trace"),
    }
}
