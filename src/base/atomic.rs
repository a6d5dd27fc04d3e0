//! Atomic file replacement: a file is written under a temporary name in its destination's
//! directory, flushed to disk and renamed over the destination (and the directory is synced), so a reader (or a crash) never
//! sees a partial file and a failed write leaves an existing file untouched.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::{Error, Result};

/// A fresh temporary sibling of `path`: `.NAME.tmp-PID-N` in the same directory, so the final
/// rename stays on one file system.
fn temp_sibling(path: &Path) -> Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| Error::Io {
        path: path.into(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path has no file name",
        ),
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok(dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )))
}

/// Replaces `path` with what `write` puts into the temporary file it is given: on success the
/// temporary file is flushed to disk and renamed over `path`; on any failure it is removed and
/// `path` is left as it was.
pub(crate) fn replace_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_sibling(path)?;
    let io = |source| Error::Io {
        path: path.into(),
        source,
    };
    let result = write(&tmp).and_then(|()| {
        fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        fs::rename(&tmp, path).map_err(io)
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `path` atomically.
pub(crate) fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    replace_with(path, |tmp| {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp)
            .and_then(|mut f| f.write_all(bytes))
            .map_err(|source| Error::Io {
                path: path.into(),
                source,
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_keeps_the_old_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("dppd-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("out.bin");
        write_bytes(&target, b"old").unwrap();
        let err = replace_with(&target, |tmp| {
            fs::write(tmp, b"partial").unwrap();
            Err(Error::Config("encoder failed".into()))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&target).unwrap(), b"old");
        write_bytes(&target, b"new").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
        let left: Vec<_> = fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "only the target remains");
        // A missing directory is an error naming the target, and creates nothing.
        let missing = dir.join("no/such/dir/out.bin");
        let msg = write_bytes(&missing, b"x").unwrap_err().to_string();
        assert!(msg.contains("no/such/dir/out.bin"), "{msg}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
