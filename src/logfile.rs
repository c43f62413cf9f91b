//! Reading container log files: the last lines without reading the whole
//! file (`logs --tail`), however large the log has grown.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

const BLOCK: u64 = 64 * 1024;

/// The last `n` lines of `path` (each with its newline; a last line without
/// one is returned as it is). Reads backwards from the end in blocks, so the
/// cost is the size of those lines, not of the file. A missing file is empty.
pub fn read_tail(path: &Path, n: usize) -> io::Result<Vec<u8>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = f.seek(SeekFrom::End(0))?;
    tail_of(&mut f, len, n)
}

fn tail_of<R: Read + Seek>(f: &mut R, len: u64, n: usize) -> io::Result<Vec<u8>> {
    if n == 0 || len == 0 {
        return Ok(Vec::new());
    }
    // Collected from the end backwards, block by block.
    let mut tail: Vec<u8> = Vec::new();
    let mut pos = len;
    // A final newline ends the last line; it does not start another.
    let mut newlines_needed = n + 1;
    let mut skip_final = true;
    while pos > 0 {
        let start = pos.saturating_sub(BLOCK);
        let mut block = vec![0u8; (pos - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut block)?;
        for i in (0..block.len()).rev() {
            if block[i] == b'\n' {
                if skip_final && start + i as u64 == len - 1 {
                    continue;
                }
                newlines_needed -= 1;
                if newlines_needed == 1 {
                    // The newline before the first wanted line.
                    block.drain(..=i);
                    block.extend_from_slice(&tail);
                    return Ok(block);
                }
            }
        }
        skip_final = false;
        block.extend_from_slice(&tail);
        tail = block;
        pos = start;
    }
    Ok(tail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Cursor;

    /// What `--tail` means, the slow way.
    fn naive(data: &[u8], n: usize) -> Vec<u8> {
        let text = data;
        let mut lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
        let start = lines.len().saturating_sub(n);
        lines.drain(..start);
        lines.concat()
    }

    fn tail(data: &[u8], n: usize) -> Vec<u8> {
        tail_of(&mut Cursor::new(data), data.len() as u64, n).unwrap()
    }

    #[test]
    fn examples() {
        assert_eq!(tail(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(tail(b"a\nb\nc\n", 10), b"a\nb\nc\n");
        assert_eq!(tail(b"a\nb\nc\n", 0), b"");
        assert_eq!(tail(b"", 3), b"");
        assert_eq!(tail(b"\n\n\n", 2), b"\n\n");
    }

    #[test]
    fn long_file_reads_only_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut data = Vec::new();
        for i in 0..200_000 {
            data.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        std::fs::write(&path, &data).unwrap();
        assert_eq!(
            read_tail(&path, 3).unwrap(),
            b"line 199997\nline 199998\nline 199999\n"
        );
        assert_eq!(read_tail(&path, 150_000).unwrap(), naive(&data, 150_000));
        assert!(
            read_tail(&dir.path().join("missing"), 3)
                .unwrap()
                .is_empty()
        );
    }

    proptest! {
        #[test]
        fn same_as_the_slow_way(
            lines in proptest::collection::vec("[a-z]{0,5}", 0..40),
            final_newline in any::<bool>(),
            n in 0usize..50,
        ) {
            let mut data = lines.join("\n").into_bytes();
            if final_newline && !data.is_empty() {
                data.push(b'\n');
            }
            prop_assert_eq!(tail(&data, n), naive(&data, n));
        }
    }
}
