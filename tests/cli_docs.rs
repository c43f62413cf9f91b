//! docs/cli.md is generated from `--help` (scripts/gen-cli-docs); it must
//! match the binary under test. No root needed.

use std::process::Command;

#[test]
fn cli_reference_is_current() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(format!("{root}/scripts/gen-cli-docs"))
        .arg("--check")
        .env("LAB_BIN", env!("CARGO_BIN_EXE_lab"))
        .output()
        .expect("running scripts/gen-cli-docs");
    assert!(
        out.status.success(),
        "docs/cli.md is stale; run scripts/gen-cli-docs\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
