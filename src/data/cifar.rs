//! CIFAR-10 binary version: `cifar-10-batches-bin/{data_batch_1..5,test_batch}.bin`, each a
//! sequence of 3,073-byte records (a label byte 0-9, then 1,024 red, 1,024 green and 1,024 blue
//! pixels of a 32x32 image, row-major). Read from that folder, its parent, a `.tar.gz` of it, or the
//! small sample embedded in the binary.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Side of an image, in pixels.
pub const IMAGE_SIDE: u32 = 32;
/// Bytes of one 32x32 RGB image, channel-major.
pub const IMAGE_BYTES: usize = 3 * (IMAGE_SIDE * IMAGE_SIDE) as usize;
/// Bytes of one record: the label byte, then the image.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
/// CIFAR-10's classes; a label byte must be below this.
pub const NUM_CLASSES: u8 = 10;
/// The five training batch files, in the order they are read.
pub const TRAIN_FILES: [&str; 5] =
    ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
/// The test batch file.
pub const TEST_FILE: &str = "test_batch.bin";
/// The folder the archive extracts to.
pub const FOLDER: &str = "cifar-10-batches-bin";
/// The cached per-pixel statistics, next to the data.
pub const STATS_CACHE: &str = "reslab-stats.safetensors";
const EXPECTED_LAYOUT: &str =
    "expected CIFAR-10's binary version: cifar-10-batches-bin/ with data_batch_1..5.bin and test_batch.bin, \
     as a folder or a .tar.gz";

/// A small real sample of CIFAR-10 in the same layout (made by `reslab data sample` from the full
/// archive), compiled into the binary so the demo runs with no download.
pub static EMBEDDED_SAMPLE: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/data/cifar10-sample.tar.gz"));

/// Where the CIFAR-10 files come from: written as `embedded` or a path in configs and on the CLI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum DataSource {
    /// The small sample compiled into the binary ([`EMBEDDED_SAMPLE`]).
    Embedded,
    /// A folder, its parent, or a `.tar.gz` of it.
    Path(PathBuf),
}

impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            DataSource::Embedded => f.write_str("embedded"),
            DataSource::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

impl From<String> for DataSource {
    fn from(s: String) -> DataSource {
        if s == "embedded" {
            DataSource::Embedded
        } else {
            DataSource::Path(PathBuf::from(s))
        }
    }
}

impl From<DataSource> for String {
    fn from(source: DataSource) -> String {
        source.to_string()
    }
}

impl FromStr for DataSource {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<DataSource, Self::Err> {
        Ok(DataSource::from(s.to_string()))
    }
}

/// `text` with control characters (newlines from a corrupt file's bytes) shown as spaces.
pub fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Checks that a batch file of `size` bytes holds whole 3,073-byte records; `name` names it.
fn check_size(name: &str, size: u64) -> Result<()> {
    if size == 0 {
        bail!("{name}: the file is empty; expected 3,073-byte CIFAR-10 records");
    }
    if !size.is_multiple_of(RECORD_BYTES as u64) {
        bail!(
            "{name}: size {size} bytes is not a multiple of 3,073 (one label byte and 3,072 pixel bytes per record); \
             the file is truncated or not a CIFAR-10 binary batch"
        );
    }
    Ok(())
}

/// Images as bytes in CIFAR's channel-major order, and their labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Records {
    /// Pixel bytes, [`IMAGE_BYTES`] per image, in record order.
    pub images: Vec<u8>,
    /// Class labels 0-9, one per image.
    pub labels: Vec<u8>,
}

impl Records {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Parses one binary batch file's bytes; `name` is used in errors.
    pub fn parse(name: &str, bytes: &[u8]) -> Result<Records> {
        check_size(name, bytes.len() as u64)?;
        let mut records = Records::default();
        records.append(name, bytes)?;
        Ok(records)
    }

    fn append(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        for (i, record) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
            if record[0] >= NUM_CLASSES {
                bail!("{name}: record {i} has label {}, expected 0-9", record[0]);
            }
            self.labels.push(record[0]);
            self.images.extend_from_slice(&record[1..]);
        }
        Ok(())
    }

    /// Appends `other`'s records after these.
    pub fn extend(&mut self, other: Records) {
        self.labels.extend(other.labels);
        self.images.extend(other.images);
    }

    /// The records back in the binary layout.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.len() * RECORD_BYTES);
        for (label, image) in self.labels.iter().zip(self.images.chunks_exact(IMAGE_BYTES)) {
            bytes.push(*label);
            bytes.extend_from_slice(image);
        }
        bytes
    }

    /// The records at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Records {
        let mut out = Records::default();
        for &i in indices {
            out.labels.push(self.labels[i]);
            out.images.extend_from_slice(&self.images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES]);
        }
        out
    }
}

/// The training set (all five batches, in order) and the test set.
#[derive(Debug, Clone)]
pub struct Cifar10 {
    /// The 50,000 training images (or the sample's).
    pub train: Records,
    /// The 10,000 test images (or the sample's).
    pub test: Records,
    /// Where derived statistics are cached: next to the files it was read from (none for the
    /// embedded sample).
    pub stats_cache: Option<PathBuf>,
}

impl DataSource {
    /// An error naming the path and the layout expected where the data is not there at all (the
    /// cheap check before anything long, such as a precision probe, starts).
    pub fn ensure_exists(&self) -> Result<()> {
        match self {
            DataSource::Path(path) if !path.exists() => {
                bail!("CIFAR-10 data {} does not exist; {EXPECTED_LAYOUT}", path.display())
            }
            _ => Ok(()),
        }
    }
}

impl Cifar10 {
    /// Reads the training and test sets from `source`; errors name the file and the layout.
    pub fn load(source: &DataSource) -> Result<Cifar10> {
        match source {
            DataSource::Embedded => Self::from_tar_gz("embedded sample", EMBEDDED_SAMPLE),
            DataSource::Path(path) => Self::from_path(path),
        }
    }

    /// Checks that `path` exists and, where it is a folder, holds every batch file, without
    /// reading them: the cheap check before anything long starts or a run directory is made.
    pub fn ensure_files(path: &Path) -> Result<()> {
        DataSource::Path(path.to_path_buf()).ensure_exists()?;
        if path.is_dir() {
            let folder = Self::folder_in(path);
            if let Some(file) =
                TRAIN_FILES.iter().chain([&TEST_FILE]).map(|name| folder.join(name)).find(|f| !f.is_file())
            {
                bail!("CIFAR-10 data {}: {} is missing; {EXPECTED_LAYOUT}", path.display(), file.display());
            }
            // A truncated file is one line now, before a run probes or writes anything.
            for name in TRAIN_FILES.iter().chain([&TEST_FILE]) {
                let file = folder.join(name);
                let size = std::fs::metadata(&file).with_context(|| format!("reading {}", file.display()))?.len();
                check_size(&file.display().to_string(), size)?;
            }
        }
        Ok(())
    }

    /// The folder of batch files a folder path names: itself, or its `cifar-10-batches-bin`.
    fn folder_in(path: &Path) -> PathBuf {
        if path.join(FOLDER).is_dir() {
            path.join(FOLDER)
        } else {
            path.to_path_buf()
        }
    }

    /// A folder (`cifar-10-batches-bin` or its parent) or a `.tar.gz` archive.
    pub fn from_path(path: &Path) -> Result<Cifar10> {
        Self::ensure_files(path)?;
        if path.is_dir() {
            let folder = Self::folder_in(path);
            let read = |name: &str| -> Result<Vec<u8>> {
                let file = folder.join(name);
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))
            };
            let mut files = HashMap::new();
            for name in TRAIN_FILES.iter().chain([&TEST_FILE]) {
                files.insert(name.to_string(), read(name)?);
            }
            let mut data = Self::from_files(&folder.display().to_string(), &files)?;
            data.stats_cache = Some(folder.join(STATS_CACHE));
            Ok(data)
        } else {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let mut data = Self::from_tar_gz(&path.display().to_string(), &bytes)?;
            data.stats_cache = Some(PathBuf::from(format!("{}.{STATS_CACHE}", path.display())));
            Ok(data)
        }
    }

    /// Reads the batch files out of a gzipped tar archive held in memory.
    pub fn from_tar_gz(name: &str, bytes: &[u8]) -> Result<Cifar10> {
        if bytes.len() < 2 || bytes[0..2] != [0x1f, 0x8b] {
            bail!("{name}: not a gzip file; {EXPECTED_LAYOUT}");
        }
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        let mut files = HashMap::new();
        // The tar layer's messages quote raw bytes of the archive: keep them on one line.
        let corrupt =
            |e: std::io::Error| anyhow::anyhow!("{name}: corrupt or truncated archive ({})", printable(&e.to_string()));
        let entries = archive.entries().map_err(corrupt)?;
        for entry in entries {
            let mut entry = entry.map_err(corrupt)?;
            let path = entry.path().map_err(corrupt)?.into_owned();
            let Some(file_name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
                continue;
            };
            if TRAIN_FILES.contains(&file_name.as_str()) || file_name == TEST_FILE {
                let mut data = Vec::with_capacity(entry.size() as usize);
                entry.read_to_end(&mut data).map_err(corrupt)?;
                files.insert(file_name, data);
            }
        }
        Self::from_files(name, &files)
    }

    fn from_files(name: &str, files: &HashMap<String, Vec<u8>>) -> Result<Cifar10> {
        let get = |file: &str| -> Result<&Vec<u8>> {
            files.get(file).with_context(|| format!("{name}: {file} is missing; {EXPECTED_LAYOUT}"))
        };
        let mut train = Records::default();
        let mut first_count = None;
        for file in TRAIN_FILES {
            let part = Records::parse(&format!("{name}/{file}"), get(file)?)?;
            match first_count {
                None => first_count = Some(part.len()),
                Some(count) if count != part.len() => bail!(
                    "{name}/{file} has {} records but {} has {count}; expected the same number in every \
                     training batch (10,000 in CIFAR-10): a file is truncated or from another copy",
                    part.len(),
                    TRAIN_FILES[0]
                ),
                Some(_) => {}
            }
            train.extend(part);
        }
        let test = Records::parse(&format!("{name}/{TEST_FILE}"), get(TEST_FILE)?)?;
        Ok(Cifar10 { train, test, stats_cache: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(label: u8, fill: u8) -> Vec<u8> {
        let mut r = vec![label];
        r.extend(std::iter::repeat_n(fill, IMAGE_BYTES));
        r
    }

    fn write_folder(dir: &Path, train_record: &[u8]) {
        let folder = dir.join(FOLDER);
        std::fs::create_dir_all(&folder).unwrap();
        for name in TRAIN_FILES {
            std::fs::write(folder.join(name), train_record).unwrap();
        }
        std::fs::write(folder.join(TEST_FILE), record(3, 9)).unwrap();
    }

    #[test]
    fn a_generated_folder_round_trips_and_its_parent_works_too() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = [record(0, 1), record(9, 2)].concat();
        write_folder(dir.path(), &bytes);
        for path in [dir.path().to_path_buf(), dir.path().join(FOLDER)] {
            let data = Cifar10::from_path(&path).unwrap();
            assert_eq!(data.train.len(), 10);
            assert_eq!(data.train.labels[..2], [0, 9]);
            assert_eq!(data.train.images[IMAGE_BYTES], 2);
            assert_eq!(data.test.labels, vec![3]);
            assert_eq!(&data.train.to_bytes()[..bytes.len()], bytes.as_slice());
        }
    }

    #[test]
    fn a_truncated_file_is_named_with_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = record(1, 1);
        bytes.pop();
        write_folder(dir.path(), &bytes);
        let err = format!("{:#}", Cifar10::from_path(dir.path()).unwrap_err());
        assert!(
            err.contains("data_batch_1.bin") && err.contains("3072 bytes") && err.contains("multiple of 3,073"),
            "{err}"
        );
    }

    #[test]
    fn training_batches_of_different_record_counts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_folder(dir.path(), &record(0, 0));
        std::fs::write(dir.path().join(FOLDER).join("data_batch_3.bin"), [record(1, 1), record(2, 2)].concat())
            .unwrap();
        let err = format!("{:#}", Cifar10::from_path(dir.path()).unwrap_err());
        assert!(err.contains("data_batch_3.bin has 2 records but data_batch_1.bin has 1"), "{err}");
    }

    #[test]
    fn a_label_above_nine_is_refused() {
        let err = Records::parse("x.bin", &[record(0, 0), record(10, 0)].concat()).unwrap_err().to_string();
        assert_eq!(err, "x.bin: record 1 has label 10, expected 0-9");
    }

    #[test]
    fn missing_files_and_paths_are_named() {
        let dir = tempfile::tempdir().unwrap();
        write_folder(dir.path(), &record(0, 0));
        std::fs::remove_file(dir.path().join(FOLDER).join("data_batch_4.bin")).unwrap();
        let err = format!("{:#}", Cifar10::from_path(dir.path()).unwrap_err());
        assert!(err.contains("data_batch_4.bin is missing"), "{err}");
        let err = format!("{:#}", Cifar10::from_path(&dir.path().join("nope")).unwrap_err());
        assert!(err.contains("nope does not exist"), "{err}");
        let junk = dir.path().join("junk.tar.gz");
        std::fs::write(&junk, b"not an archive").unwrap();
        let err = format!("{:#}", Cifar10::from_path(&junk).unwrap_err());
        assert!(err.contains("not a gzip file"), "{err}");
    }

    #[test]
    fn the_embedded_sample_is_small_real_and_balanced() {
        assert!(EMBEDDED_SAMPLE.len() <= 10 * 1024 * 1024);
        let data = Cifar10::load(&DataSource::Embedded).unwrap();
        assert!(data.train.len() >= 2000 && data.test.len() >= 500, "{} / {}", data.train.len(), data.test.len());
        for class in 0..NUM_CLASSES {
            let count = data.train.labels.iter().filter(|&&l| l == class).count();
            assert_eq!(count, data.train.len() / 10, "class {class}");
        }
    }
}
