//! `reslab data fetch`: download the CIFAR-10 binary archive safely.
//!
//! The archive is downloaded to `<name>.part` (a partial file is resumed with an HTTP range
//! request), its checksum verified before anything is extracted (a mismatch deletes it), and it is
//! extracted into a temporary folder that refuses absolute paths, `..` components and links, then
//! validated and renamed into place: a folder named `cifar-10-batches-bin` is always complete.

use super::cifar::{Cifar10, FOLDER};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use md5::Md5;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// Where `reslab data fetch` downloads CIFAR-10's binary version from by default.
pub const OFFICIAL_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/// The MD5 the official archive is checked against.
pub const OFFICIAL_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";

/// The expected digest of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// An MD5 digest, 32 lowercase hexadecimal digits.
    Md5(String),
    /// A SHA-256 digest, 64 lowercase hexadecimal digits.
    Sha256(String),
}

impl Checksum {
    /// The checksum the user gave (SHA-256 or MD5), or the official archive's MD5.
    pub fn given_or_official(md5: Option<&str>, sha256: Option<&str>) -> Result<Checksum> {
        match (md5, sha256) {
            (_, Some(sha256)) => Checksum::sha256(sha256),
            (Some(md5), None) => Checksum::md5(md5),
            (None, None) => Checksum::md5(OFFICIAL_MD5),
        }
    }

    /// An MD5 checksum from hexadecimal (case and spaces ignored); an error if not 32 digits.
    pub fn md5(hex: &str) -> Result<Checksum> {
        Ok(Checksum::Md5(Self::hex(hex, 32, "--md5")?))
    }

    /// A SHA-256 checksum from hexadecimal (case and spaces ignored); an error if not 64 digits.
    pub fn sha256(hex: &str) -> Result<Checksum> {
        Ok(Checksum::Sha256(Self::hex(hex, 64, "--sha256")?))
    }

    fn hex(hex: &str, len: usize, what: &str) -> Result<String> {
        let hex = hex.trim().to_ascii_lowercase();
        if hex.len() != len || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!("{what} '{hex}' is not a checksum: expected {len} hexadecimal digits");
        }
        Ok(hex)
    }

    fn name(&self) -> &'static str {
        match self {
            Checksum::Md5(_) => "md5",
            Checksum::Sha256(_) => "sha256",
        }
    }

    fn expected(&self) -> &str {
        match self {
            Checksum::Md5(h) | Checksum::Sha256(h) => h,
        }
    }

    /// The digest of `path`, in this checksum's algorithm.
    fn of_file(&self, path: &Path) -> Result<String> {
        let mut file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
        let mut buffer = vec![0u8; 1 << 20];
        let mut md5 = Md5::new();
        let mut sha = Sha256::new();
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            match self {
                Checksum::Md5(_) => md5.update(&buffer[..n]),
                Checksum::Sha256(_) => sha.update(&buffer[..n]),
            }
        }
        Ok(match self {
            Checksum::Md5(_) => format!("{:x}", md5.finalize()),
            Checksum::Sha256(_) => format!("{:x}", sha.finalize()),
        })
    }
}

/// Downloads `url` into `dir`, verifies it and extracts it; returns the extracted
/// `cifar-10-batches-bin` folder. An archive already there with the right checksum is not
/// downloaded again.
pub fn fetch(url: &str, checksum: &Checksum, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = url.rsplit('/').next().filter(|n| n.ends_with(".tar.gz") || n.ends_with(".tgz"));
    let archive = dir.join(name.unwrap_or("cifar-10-binary.tar.gz"));
    let part = PathBuf::from(format!("{}.part", archive.display()));
    let have_archive = archive.is_file() && checksum.of_file(&archive)? == checksum.expected();
    if !have_archive {
        download(url, &part)?;
        let found = checksum.of_file(&part)?;
        if found != checksum.expected() {
            let _ = std::fs::remove_file(&part);
            bail!(
                "checksum mismatch for {url}: expected {} {}, found {found}; the download was deleted",
                checksum.name(),
                checksum.expected()
            );
        }
        std::fs::rename(&part, &archive)
            .with_context(|| format!("renaming {} to {}", part.display(), archive.display()))?;
    }
    extract(&archive, dir)
}

/// Downloads `url` to `part`, continuing a partial file with a range request.
fn download(url: &str, part: &Path) -> Result<()> {
    let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    // Per connection and per read, not overall: a slow link may take hours for the archive, but a
    // server that stops sending is an error within a minute.
    let mut request = ureq::AgentBuilder::new()
        .timeout_connect(std::time::Duration::from_secs(30))
        .timeout_read(std::time::Duration::from_secs(60))
        .build()
        .get(url);
    if have > 0 {
        request = request.set("Range", &format!("bytes={have}-"));
    }
    let response = match request.call() {
        Ok(response) => response,
        // The partial file is already whole: the checksum decides.
        Err(ureq::Error::Status(416, _)) if have > 0 => return Ok(()),
        Err(ureq::Error::Status(code, response)) => {
            bail!("downloading {url}: the server answered {code} {}", response.status_text())
        }
        Err(e) => bail!("downloading {url}: {e}"),
    };
    let resumed = response.status() == 206;
    let length: Option<u64> = response.header("Content-Length").and_then(|v| v.parse().ok());
    let mut file = if resumed { std::fs::OpenOptions::new().append(true).open(part) } else { File::create(part) }
        .with_context(|| format!("writing {}", part.display()))?;
    let start = if resumed { have } else { 0 };
    let progress = ProgressBar::new(start + length.unwrap_or(0));
    progress.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    progress.set_message(if resumed { format!("resuming at {have} bytes") } else { "downloading".to_string() });
    progress.set_position(start);
    let mut reader = response.into_reader();
    let mut buffer = vec![0u8; 1 << 16];
    let mut received = 0u64;
    loop {
        let n = reader.read(&mut buffer).with_context(|| {
            format!("downloading {url}: the connection broke; run the same command again to resume")
        })?;
        if n == 0 {
            break;
        }
        file.write_all(&buffer[..n]).with_context(|| format!("writing {}", part.display()))?;
        received += n as u64;
        progress.inc(n as u64);
    }
    file.sync_all()?;
    progress.finish_and_clear();
    if let Some(length) = length {
        if received < length {
            bail!("downloading {url}: got {received} of {length} bytes; run the same command again to resume");
        }
    }
    Ok(())
}

/// Extracts `archive` into a temporary folder of `dir` (refusing anything that could write
/// outside it), checks the data loads, and renames it to `dir/cifar-10-batches-bin`.
pub fn extract(archive: &Path, dir: &Path) -> Result<PathBuf> {
    let target = dir.join(FOLDER);
    let staging = dir.join(format!(".extract-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let result = extract_into(archive, &staging).and_then(|()| {
        let extracted = staging.join(FOLDER);
        Cifar10::from_path(&extracted)
            .with_context(|| format!("{}: the extracted data is not valid", archive.display()))?;
        if target.exists() {
            std::fs::remove_dir_all(&target).with_context(|| format!("replacing {}", target.display()))?;
        }
        std::fs::rename(&extracted, &target).with_context(|| format!("moving data to {}", target.display()))?;
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&staging);
    result.map(|()| target)
}

fn extract_into(archive: &Path, staging: &Path) -> Result<()> {
    let file = File::open(archive).with_context(|| format!("reading {}", archive.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    std::fs::create_dir_all(staging)?;
    let entries = tar.entries().with_context(|| format!("{}: not a tar.gz archive", archive.display()))?;
    for entry in entries {
        let mut entry = entry.with_context(|| format!("{}: corrupt archive", archive.display()))?;
        let path = entry.path().with_context(|| format!("{}: bad entry name", archive.display()))?.into_owned();
        if path.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
            bail!(
                "{}: entry '{}' points outside the target folder (absolute or '..'); refusing to extract",
                archive.display(),
                path.display()
            );
        }
        let kind = entry.header().entry_type();
        let destination = staging.join(&path);
        if kind.is_dir() {
            std::fs::create_dir_all(&destination)?;
        } else if kind.is_file() {
            if let Some(parent) = destination.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut out = File::create(&destination).with_context(|| format!("writing {}", destination.display()))?;
            std::io::copy(&mut entry, &mut out).with_context(|| format!("{}: truncated archive", archive.display()))?;
        } else {
            bail!(
                "{}: entry '{}' is a link or special file ({kind:?}); refusing to extract it",
                archive.display(),
                path.display()
            );
        }
    }
    Ok(())
}
