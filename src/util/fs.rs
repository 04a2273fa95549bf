//! File writing that never leaves a half-written file under the real name.

use anyhow::Result;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The temporary name `path` is written under before it is renamed into place: hidden, in the
/// same directory (so the rename is atomic), keeping the extension (some writers dispatch on it).
pub fn temporary_name(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".tmp-{}-{name}", std::process::id()))
}

/// Runs `write` on a temporary file next to `path`, syncs it to disk and renames it to `path`.
/// On failure the temporary file is removed and `path` is untouched.
pub fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temporary_name(path);
    let result = write(&tmp).and_then(|()| {
        File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| {
        // A full disk: say how full, so the user knows how much to free (and where).
        let note = match out_of_space(&e) {
            true => free_space_note(path.parent().unwrap_or(Path::new("."))),
            false => String::new(),
        };
        e.context(format!("writing {}{note}", path.display()))
    })
}

/// Whether `error` is a full file system (ENOSPC, or a library's message of it).
fn out_of_space(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().and_then(std::io::Error::raw_os_error) == Some(libc::ENOSPC)
            || cause.to_string().contains("No space left on device")
    })
}

/// ` (the file system of DIR has N free of M)`, or nothing where that cannot be read.
fn free_space_note(dir: &Path) -> String {
    match free_and_total_bytes(dir) {
        Some((free, total)) => {
            format!(" (the file system of {} has {} free of {})", dir.display(), human_bytes(free), human_bytes(total))
        }
        None => String::new(),
    }
}

/// Bytes an unprivileged writer may still use on `dir`'s file system, and its size.
pub fn free_and_total_bytes(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statvfs the call fills in.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    let block = stat.f_frsize as u64;
    Some((stat.f_bavail as u64 * block, stat.f_blocks as u64 * block))
}

/// `512 B`, `12.0 KiB`, `3.4 MiB`, `1.2 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Writes `contents` to `path` atomically.
pub fn write_file(path: &Path, contents: &[u8]) -> Result<()> {
    write_atomically(path, |tmp| Ok(std::fs::write(tmp, contents)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_at_a_glance_and_a_full_disk_says_how_full() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(12 * 1024), "12.0 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 + 400 * 1024), "3.4 MiB");
        let dir = tempfile::tempdir().unwrap();
        let (free, total) = free_and_total_bytes(dir.path()).unwrap();
        assert!(free <= total && total > 0);
        let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let err = write_atomically(&dir.path().join("x.bin"), |_| Err(full.into())).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.starts_with(&format!("writing {}", dir.path().join("x.bin").display())), "{text}");
        assert!(text.contains(&format!("(the file system of {} has ", dir.path().display())), "{text}");
        assert!(text.contains("No space left on device"), "{text}");
        let other = write_atomically(&dir.path().join("y.bin"), |_| Err(anyhow::anyhow!("denied"))).unwrap_err();
        assert!(!format!("{other:#}").contains("free of"), "only a full disk gets the note");
        assert!(!dir.path().join(".tmp-x.bin").exists());
    }
}
