//! `reslab data fetch` against a local HTTP server on 127.0.0.1: the shared archive with its own
//! checksum, a broken connection resumed, a wrong checksum, and malicious archives. Nothing
//! reaches the internet.

#[macro_use]
mod common;
use common::harness::{self};
use common::*;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

const SHARED_MD5: &str = "4a8323bbac6380542f73452dbe5f2bf6";

struct Server {
    url: String,
    /// The Range header of every request, in order ("" when there was none).
    ranges: Arc<Mutex<Vec<String>>>,
}

/// Serves `body` at /cifar-10-binary.tar.gz, honouring `Range: bytes=N-`. The first response is
/// cut after `cut_first` bytes of body when given (a broken connection).
fn serve(body: Vec<u8>, cut_first: Option<usize>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/cifar-10-binary.tar.gz", listener.local_addr().unwrap());
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&ranges);
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut range = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    range = v.trim().trim_end_matches('-').to_string();
                }
            }
            seen.lock().unwrap().push(range.clone());
            let start: usize = range.parse().unwrap_or(0);
            let (status, extra) = if range.is_empty() {
                ("200 OK", String::new())
            } else if start >= body.len() {
                let _ = write!(
                    stream,
                    "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                continue;
            } else {
                ("206 Partial Content", format!("Content-Range: bytes {start}-{}/{}\r\n", body.len() - 1, body.len()))
            };
            let rest = &body[start..];
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                rest.len()
            );
            let send = if i == 0 { cut_first.map_or(rest.len(), |n| n.min(rest.len())) } else { rest.len() };
            let _ = stream.write_all(&rest[..send]);
        }
    });
    Server { url, ranges }
}

fn fetch(url: &str, checksum: (&str, &str), dir: &Path) -> std::process::Output {
    reslab(&["data", "fetch", "--url", url, checksum.0, checksum.1, "--dir", dir.to_str().unwrap()])
}

fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

fn the_shared_archive_downloads_verifies_and_extracts_to_a_loadable_folder() {
    let server = serve(std::fs::read(cifar_archive()).unwrap(), None);
    let dir = tempfile::tempdir().unwrap();
    let output = fetch(&server.url, ("--sha256", harness::CIFAR_SHA256), dir.path());
    assert!(output.status.success(), "{}", stderr(&output));
    let folder = dir.path().join("cifar-10-batches-bin");
    let data = reslab::data::Cifar10::from_path(&folder).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (50_000, 10_000));
    assert!(!dir.path().join("cifar-10-binary.tar.gz.part").exists());
    // Again: the archive is there with the right checksum, so nothing is downloaded.
    let output = fetch(&server.url, ("--md5", SHARED_MD5), dir.path());
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(server.ranges.lock().unwrap().len(), 1, "no second download");
}

fn a_broken_download_resumes_where_it_stopped() {
    let body = reslab::data::cifar::EMBEDDED_SAMPLE.to_vec();
    let server = serve(body.clone(), Some(body.len() / 3));
    let dir = tempfile::tempdir().unwrap();
    let sum = sha256(&body);
    let output = fetch(&server.url, ("--sha256", &sum), dir.path());
    assert_clean_error(&output, &["resume"]);
    let part = dir.path().join("cifar-10-binary.tar.gz.part");
    assert_eq!(std::fs::metadata(&part).unwrap().len() as usize, body.len() / 3);
    assert!(!dir.path().join("cifar-10-batches-bin").exists(), "nothing extracted from a partial download");
    let output = fetch(&server.url, ("--sha256", &sum), dir.path());
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(server.ranges.lock().unwrap().clone(), vec![String::new(), (body.len() / 3).to_string()]);
    assert!(dir.path().join("cifar-10-batches-bin/data_batch_5.bin").is_file());
}

fn a_wrong_checksum_deletes_the_download_and_says_what_was_expected_and_found() {
    let body = reslab::data::cifar::EMBEDDED_SAMPLE.to_vec();
    let server = serve(body.clone(), None);
    let dir = tempfile::tempdir().unwrap();
    let wrong = "0".repeat(32);
    let err = assert_clean_error(
        &fetch(&server.url, ("--md5", &wrong), dir.path()),
        &["checksum mismatch", "expected md5 00000", "deleted"],
    );
    assert!(err.contains(&format!("{:x}", md5::Md5::digest(&body))), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing left behind");
    // The default is the official archive's MD5, which this copy does not have.
    let output = reslab(&["data", "fetch", "--url", &server.url, "--dir", dir.path().to_str().unwrap()]);
    assert_clean_error(&output, &["expected md5 c32a1d4ab5d03f1284b67883e8d87530"]);
    assert_clean_error(&fetch(&server.url, ("--sha256", "xyz"), dir.path()), &["--sha256", "64 hexadecimal digits"]);
}

/// A .tar.gz with one entry whose name and type are written raw (the tar crate's builder would
/// refuse them).
fn hostile_archive(name: &str, kind: tar::EntryType, link: Option<&str>) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let mut header = tar::Header::new_old();
    let raw = header.as_old_mut();
    raw.name[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(link) = link {
        raw.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    header.set_entry_type(kind);
    header.set_size(if kind.is_file() { 4 } else { 0 });
    header.set_mode(0o644);
    header.set_cksum();
    let data: &[u8] = if kind.is_file() { b"evil" } else { b"" };
    builder.append(&header, data).unwrap();
    builder.into_inner().unwrap().finish().unwrap()
}

fn malicious_archives_are_refused_and_write_nothing_outside() {
    let cases = [
        ("../escaped.txt", tar::EntryType::Regular, None, "outside the target folder"),
        ("/tmp/reslab-absolute.txt", tar::EntryType::Regular, None, "outside the target folder"),
        ("cifar-10-batches-bin/link", tar::EntryType::Symlink, Some("/etc/passwd"), "is a link"),
        ("cifar-10-batches-bin/hard", tar::EntryType::Link, Some("../../outside"), "is a link"),
    ];
    for (name, kind, link, message) in cases {
        let body = hostile_archive(name, kind, link);
        let server = serve(body.clone(), None);
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("target");
        let output = fetch(&server.url, ("--sha256", &sha256(&body)), &dir);
        assert_clean_error(&output, &[message, name]);
        assert!(!root.path().join("escaped.txt").exists() && !Path::new("/tmp/reslab-absolute.txt").exists());
        assert!(!dir.join("cifar-10-batches-bin").exists(), "{name}: no data folder from a refused archive");
    }
}

fn main() -> std::process::ExitCode {
    harness::run(vec![
        trial!(the_shared_archive_downloads_verifies_and_extracts_to_a_loadable_folder, harness::shared_data()),
        trial!(a_broken_download_resumes_where_it_stopped),
        trial!(a_wrong_checksum_deletes_the_download_and_says_what_was_expected_and_found),
        trial!(malicious_archives_are_refused_and_write_nothing_outside),
    ])
}
