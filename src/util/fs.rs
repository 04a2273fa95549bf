//! File writing that never leaves a half-written file under the real name.

use anyhow::Result;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The temporary name `path` is written under before it is renamed into place: hidden, in the
/// same directory (so the rename is atomic), keeping the extension (some writers dispatch on it).
pub fn temporary_name(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".tmp-{}-{name}", std::process::id()))
}

/// A temporary name like [`temporary_name`], unique per call too: for writers that may run at
/// once in one process (figures are drawn on several threads).
pub fn unique_temporary_name(path: &Path) -> PathBuf {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".tmp-{}-{n}-{name}", std::process::id()))
}

/// Makes a finished temporary file durable, then renames it to `path` (atomic in one folder).
pub fn commit(tmp: &Path, path: &Path) -> std::io::Result<()> {
    File::open(tmp)?.sync_all()?;
    std::fs::rename(tmp, path)
}

/// Runs `write` on a temporary file next to `path`, syncs it to disk and renames it to `path`.
/// On failure the temporary file is removed and `path` is untouched.
pub fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temporary_name(path);
    // Made here first, so a folder that is missing or not writable is an OS error in words,
    // whatever the writer would have said of it.
    if let Err(e) = File::create(&tmp) {
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow::bail!(
                "writing {}: the folder {} does not exist; expected an existing folder",
                path.display(),
                folder.display()
            );
        }
        anyhow::bail!("writing {}: {} (in the folder {})", path.display(), e, folder.display());
    }
    let result = write(&tmp).and_then(|()| Ok(commit(&tmp, path)?));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| {
        // A full disk: say how full, so the user knows how much to free (and where).
        let note = match out_of_space(&e) {
            true => free_space_note(path.parent().unwrap_or(Path::new("."))),
            false => String::new(),
        };
        // The writer's message names the temporary file and may hold Debug text of an OS error.
        let message = in_words(&format!("{e:#}")).replace(&tmp.display().to_string(), &path.display().to_string());
        anyhow::anyhow!("writing {}{note}: {message}", path.display())
    })
}

/// `text` with the Debug form of an OS error (`IoError(Os { code: 28, kind: StorageFull, message:
/// "No space left on device" })`, as libraries print it) replaced by its words.
fn in_words(text: &str) -> String {
    let mut text = text.to_string();
    while let Some(start) = text.find("Os { code: ") {
        let Some(end) = text[start..].find(" }").map(|e| start + e + 2) else { break };
        let debug = &text[start..end];
        let code = debug["Os { code: ".len()..].split(',').next().unwrap_or_default().to_string();
        let message = debug.split("message: \"").nth(1).and_then(|m| m.split('"').next()).unwrap_or_default();
        let words = format!("{message} (os error {code})");
        // A wrapper around it (`IoError(...)`) goes too.
        let (start, end) = match (text[..start].strip_suffix("IoError("), text[end..].starts_with(')')) {
            (Some(before), true) => (before.len(), end + 1),
            _ => (start, end),
        };
        text.replace_range(start..end, &words);
    }
    text
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

    #[test]
    fn a_missing_folder_and_a_writers_debug_text_come_out_in_words_naming_the_real_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-folder/x.bin");
        let err = format!("{:#}", write_atomically(&missing, |_| Ok(())).unwrap_err());
        let folder = dir.path().join("no-such-folder");
        let expected = format!("the folder {} does not exist; expected an existing folder", folder.display());
        assert_eq!(err, format!("writing {}: {expected}", missing.display()));
        let path = dir.path().join("y.bin");
        let err = write_atomically(&path, |tmp| {
            let debug = "IoError(Os { code: 5, kind: Uncategorized, message: \"Input/output error\" })";
            Err(anyhow::anyhow!("safetensors error {}: {debug}", tmp.display()))
        })
        .unwrap_err();
        let text = format!("{err:#}");
        let words = format!("safetensors error {}: Input/output error (os error 5)", path.display());
        assert!(text.ends_with(&words) && !text.contains(".tmp-") && !text.contains("Os {"), "{text}");
        assert!(!temporary_name(&path).exists());
    }
}
