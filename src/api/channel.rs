//! The `pods/exec` and `pods/attach` stream protocol (`v5.channel.k8s.io`,
//! also `v4.channel.k8s.io`), shared by the daemon's server and `lab exec`:
//! every binary WebSocket message starts with one of these channel bytes.

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
/// One `Status` object when the command ends.
pub const ERROR: u8 = 3;
/// `{"Width":…,"Height":…}`.
pub const RESIZE: u8 = 4;
/// v5: "close channel N" (`[255, 0]` ends stdin).
pub const CLOSE: u8 = 255;
