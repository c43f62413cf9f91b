//! The user's terminal for `lab exec -t`: whether stdin is one, and raw
//! mode while the session lasts, so every key reaches the command's pty in
//! the pod, whose own line discipline interprets it.

use nix::sys::termios::{self, SetArg, Termios};
use std::io;

/// Whether stdin is a terminal.
pub fn stdin_is_tty() -> bool {
    nix::unistd::isatty(io::stdin()).unwrap_or(false)
}

/// The user's terminal in raw mode until dropped (then restored).
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub fn enter() -> io::Result<RawMode> {
        let stdin = io::stdin();
        let saved = termios::tcgetattr(&stdin).map_err(io::Error::from)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw).map_err(io::Error::from)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(io::stdin(), SetArg::TCSADRAIN, &self.saved);
    }
}
