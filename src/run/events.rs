//! TensorBoard event files: every metrics row's scalars (training loss and error, test error,
//! learning rate, images per second), so `tensorboard --logdir results/` and the tools that import
//! event files show runs side by side.
//!
//! Written by hand (the maintained crates pull in a protobuf stack; `tensorboard-rs` is
//! unmaintained and carries an advisory): a TFRecord file of `Event` protos, each record
//! `length (u64 LE), masked CRC32C of length (u32 LE), data, masked CRC32C of data (u32 LE)`.
//! The file mirrors `metrics.csv`: a resumed run rewrites it from the rows kept, then appends.

use super::metrics::MetricsRow;
use crate::util::fs::write_atomically;
use anyhow::{Context, Result};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// One file per run directory (TensorBoard reads every file whose name contains "tfevents").
pub const FILE_NAME: &str = "events.out.tfevents.reslab";

/// Appends metrics rows to a run's TensorBoard event file, each value a scalar summary.
pub struct EventWriter {
    file: File,
}

impl EventWriter {
    /// (Re)writes the run's event file with `rows` and opens it to append.
    pub fn create(dir: &Path, rows: &[MetricsRow]) -> Result<EventWriter> {
        let path = dir.join(FILE_NAME);
        let mut bytes = record(&file_version_event());
        for row in rows {
            bytes.extend(row_records(row));
        }
        write_atomically(&path, |tmp| Ok(std::fs::write(tmp, &bytes)?))?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(EventWriter { file })
    }

    /// Appends `row`'s values as scalar events and flushes.
    pub fn write(&mut self, row: &MetricsRow) -> Result<()> {
        self.file.write_all(&row_records(row)).and_then(|()| self.file.flush()).context("writing the event file")
    }
}

/// The scalars of one row, one event each, at the row's iteration.
fn row_records(row: &MetricsRow) -> Vec<u8> {
    let scalars = [
        ("train/loss", row.train_loss),
        ("train/error", row.train_err),
        ("test/error", row.test_err),
        ("lr", row.lr),
        ("images_per_s", row.img_per_s),
    ];
    let wall_time = now();
    scalars.iter().flat_map(|&(tag, value)| record(&scalar_event(wall_time, row.iter as i64, tag, value))).collect()
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// A TFRecord: length, its masked CRC, the data, its masked CRC.
fn record(data: &[u8]) -> Vec<u8> {
    let length = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend(length);
    out.extend(masked_crc(&length).to_le_bytes());
    out.extend(data);
    out.extend(masked_crc(data).to_le_bytes());
    out
}

fn file_version_event() -> Vec<u8> {
    let mut event = Vec::new();
    event.push(0x09); // wall_time: field 1, 64-bit
    event.extend(now().to_le_bytes());
    length_delimited(&mut event, 3, b"brain.Event:2"); // file_version
    event
}

/// `Event { wall_time, step, summary: Summary { value: [Value { tag, simple_value }] } }`.
fn scalar_event(wall_time: f64, step: i64, tag: &str, value: f64) -> Vec<u8> {
    let mut value_message = Vec::new();
    length_delimited(&mut value_message, 1, tag.as_bytes());
    value_message.push(0x15); // simple_value: field 2, 32-bit
    value_message.extend((value as f32).to_le_bytes());
    let mut summary = Vec::new();
    length_delimited(&mut summary, 1, &value_message);
    let mut event = Vec::new();
    event.push(0x09);
    event.extend(wall_time.to_le_bytes());
    event.push(0x10); // step: field 2, varint
    varint(&mut event, step as u64);
    length_delimited(&mut event, 5, &summary);
    event
}

fn length_delimited(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    out.push(field << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend(bytes);
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// CRC-32C (Castagnoli), masked as TFRecord stores it.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The CRC-32C check value (RFC 3720's "123456789").
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn records_frame_their_data_with_length_and_checksums() {
        let framed = record(b"abc");
        assert_eq!(framed.len(), 3 + 16);
        assert_eq!(u64::from_le_bytes(framed[..8].try_into().unwrap()), 3);
        assert_eq!(&framed[12..15], b"abc");
        assert_eq!(u32::from_le_bytes(framed[15..].try_into().unwrap()), masked_crc(b"abc"));
    }

    #[test]
    fn varints_use_seven_bits_a_byte() {
        let mut out = Vec::new();
        varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
    }
}
