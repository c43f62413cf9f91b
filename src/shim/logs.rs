//! Container log rotation, as the kubelet does it: when a container's live
//! log `<container>/<run>.log` reaches `max_bytes`, its contents move to
//! `<run>.log.<YYYYMMDD-HHMMSS>` and the live file starts again empty; at
//! most `max_files` files are kept per container (the live one included).
//! Logs of runs before the previous one are removed (the kubelet keeps one
//! dead container per container name), so a crash-looping container does
//! not fill the disk either.
//!
//! The container writes the live file itself (`O_APPEND`, no pipe through
//! the shim), so rotation is copy-then-truncate: a line written in the
//! microseconds between the last copy and the truncate is lost. The
//! kubelet's CRI path (rename + reopen) cannot lose one; the trade-off here
//! is that a container's output never depends on the shim reading it.

use crate::wire::shim::LogRotation;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::fs::File;
use std::io;

/// A file rotated out of the live log.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Rotated {
    pub file: String,
    pub bytes: u64,
}

fn ctx(what: impl std::fmt::Display, e: impl Into<io::Error>) -> io::Error {
    let e = e.into();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Size of `<dir>/<path>`, `None` if it does not exist.
fn size_at(dir: &File, path: &str) -> io::Result<Option<u64>> {
    match nix::sys::stat::fstatat(dir, path, nix::fcntl::AtFlags::empty()) {
        Ok(st) => Ok(Some(st.st_size as u64)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(ctx(format_args!("stat {path}"), e)),
    }
}

/// `2026-12-02T08:15:00Z` → `20261202-081500` (the kubelet's suffix).
pub(super) fn stamp(rfc3339: &str) -> String {
    let digits: String = rfc3339.chars().filter(char::is_ascii_digit).collect();
    if digits.len() >= 14 {
        format!("{}-{}", &digits[..8], &digits[8..14])
    } else {
        digits
    }
}

/// Rotate `<container>/<run>.log` if it has reached the limit.
pub(super) fn rotate(
    dir: &File,
    container: &str,
    run: u32,
    policy: &LogRotation,
    stamp: &str,
) -> io::Result<Option<Rotated>> {
    let live = format!("{container}/{run}.log");
    match size_at(dir, &live)? {
        Some(n) if n >= policy.max_bytes => {}
        _ => return Ok(None),
    }
    let mut src = File::from(
        nix::fcntl::openat(
            dir,
            live.as_str(),
            OFlag::O_RDWR | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ctx(format_args!("opening {live}"), e))?,
    );
    let (name, mut dst) = create_unique(dir, container, &format!("{run}.log.{stamp}"))?;
    // Copy to the end, twice more if the container kept writing, then cut.
    let mut bytes = 0;
    for _ in 0..3 {
        let n = io::copy(&mut src, &mut dst).map_err(|e| ctx(format_args!("copying {live}"), e))?;
        bytes += n;
        if n == 0 {
            break;
        }
    }
    src.set_len(0)
        .map_err(|e| ctx(format_args!("truncating {live}"), e))?;
    Ok(Some(Rotated { file: name, bytes }))
}

/// Create `<container>/<name>` (or `<name>-1`, `-2`, … if taken) for writing.
fn create_unique(dir: &File, container: &str, name: &str) -> io::Result<(String, File)> {
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC;
    for i in 0..100 {
        let candidate = if i == 0 {
            name.to_string()
        } else {
            format!("{name}-{i}")
        };
        let path = format!("{container}/{candidate}");
        match nix::fcntl::openat(dir, path.as_str(), flags, Mode::from_bits_truncate(0o600)) {
            Ok(fd) => return Ok((candidate, File::from(fd))),
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(ctx(format_args!("creating {path}"), e)),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{container}/{name}: too many rotated files with this name"),
    ))
}

/// Which files in a container's log directory to remove, given the live
/// run: rotated files of `run` beyond the newest `max_files - 1`, and every
/// file of runs before `run - 1`. Pure, for tests.
pub(super) fn to_prune(names: &[String], run: u32, max_files: u32) -> Vec<String> {
    let mut rotated: Vec<&String> = Vec::new();
    let mut out = Vec::new();
    for n in names {
        let Some((r, rest)) = n.split_once(".log") else {
            continue;
        };
        let Ok(r) = r.parse::<u32>() else { continue };
        if r + 1 < run {
            out.push(n.clone());
        } else if r == run && rest.starts_with('.') {
            rotated.push(n);
        } else if r + 1 == run && !rest.is_empty() {
            // The previous run's live file stays for `logs --previous`.
            out.push(n.clone());
        }
    }
    // The suffix sorts by time (`-N` after the plain stamp of its second).
    rotated.sort();
    let keep = max_files.saturating_sub(1) as usize;
    let excess = rotated.len().saturating_sub(keep);
    out.extend(rotated.into_iter().take(excess).cloned());
    out.sort();
    out
}

/// Remove what [`to_prune`] names; returns the names removed.
pub(super) fn prune(
    dir: &File,
    container: &str,
    run: u32,
    max_files: u32,
) -> io::Result<Vec<String>> {
    let mut d = match nix::dir::Dir::openat(
        dir,
        container,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(d) => d,
        Err(Errno::ENOENT) => return Ok(Vec::new()),
        Err(e) => return Err(ctx(format_args!("listing {container}"), e)),
    };
    let mut names = Vec::new();
    for e in d.iter() {
        let e = e.map_err(|e| ctx(format_args!("listing {container}"), e))?;
        // A name that is not UTF-8 is none of ours.
        if let Ok(n) = e.file_name().to_str() {
            names.push(n.to_string());
        }
    }
    let gone = to_prune(&names, run, max_files);
    for n in &gone {
        crate::sys::process::unlink_at(dir, &format!("{container}/{n}"))?;
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn stamps_like_the_kubelet() {
        assert_eq!(stamp("2026-12-02T08:15:07Z"), "20261202-081507");
    }

    #[test]
    fn prunes_old_runs_and_excess_rotations() {
        let all = names(&[
            "0.log",
            "0.log.20260101-000000",
            "1.log",
            "1.log.20260101-000001",
            "2.log",
            "2.log.20260101-000002",
            "2.log.20260101-000003",
            "2.log.20260101-000003-1",
            "2.log.20260101-000004",
            "2.log.20260101-000005",
            "shim.log",
        ]);
        assert_eq!(
            to_prune(&all, 2, 4),
            names(&[
                "0.log",
                "0.log.20260101-000000",
                "1.log.20260101-000001",
                "2.log.20260101-000002",
                "2.log.20260101-000003",
            ])
        );
        // Run 0: nothing before it; 2 files = the live one and one rotation.
        let first = names(&["0.log", "0.log.a", "0.log.b"]);
        assert_eq!(to_prune(&first, 0, 2), names(&["0.log.a"]));
    }

    #[test]
    fn rotates_copy_then_truncate_and_appends_continue() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("app")).unwrap();
        let path = tmp.path().join("app/0.log");
        let mut w = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        w.write_all(b"first line\n").unwrap();
        let dir = File::open(tmp.path()).unwrap();
        let policy = LogRotation {
            max_bytes: 100,
            max_files: 3,
        };
        assert_eq!(rotate(&dir, "app", 0, &policy, "s1").unwrap(), None);
        w.write_all(&[b'x'; 100]).unwrap();
        let r = rotate(&dir, "app", 0, &policy, "s1").unwrap().unwrap();
        assert_eq!((r.file.as_str(), r.bytes), ("0.log.s1", 111));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        // The writer's O_APPEND offset follows the truncate.
        w.write_all(b"after\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "after\n");
        w.write_all(&[b'y'; 100]).unwrap();
        let r2 = rotate(&dir, "app", 0, &policy, "s1").unwrap().unwrap();
        assert_eq!(r2.file, "0.log.s1-1");
        let rotated = std::fs::read(tmp.path().join("app/0.log.s1")).unwrap();
        assert!(rotated.starts_with(b"first line\n") && rotated.len() == 111);
        w.write_all(&[b'z'; 100]).unwrap();
        rotate(&dir, "app", 0, &policy, "s2").unwrap().unwrap();
        assert_eq!(prune(&dir, "app", 0, 3).unwrap(), names(&["0.log.s1"]));
        let mut left: Vec<String> = std::fs::read_dir(tmp.path().join("app"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, names(&["0.log", "0.log.s1-1", "0.log.s2"]));
    }
}
