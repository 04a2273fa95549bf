//! Measurements kept per machine, so a choice measured once is made at once afterwards: a small
//! TOML file of named entries in the user's cache folder (`RESLAB_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/reslab`, else `~/.cache/reslab`).
//!
//! A cache is an optimisation, never a source of truth: an entry's key names everything the
//! measurement depends on (the machine, libtorch's and reslab's versions, what was measured), so a
//! changed key measures again; a file that cannot be read is ignored with a warning and rewritten;
//! a cache that cannot be written costs a measurement next time, nothing else.

use super::fs::write_file;
use serde::{de::DeserializeOwned, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The environment variable that sets the cache folder.
pub const CACHE_DIR_ENV: &str = "RESLAB_CACHE_DIR";

/// The cache folder: `RESLAB_CACHE_DIR`, `$XDG_CACHE_HOME/reslab` or `~/.cache/reslab`; `None`
/// where none of them is set (nothing is cached then).
pub fn cache_dir() -> Option<PathBuf> {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    set(CACHE_DIR_ENV)
        .or_else(|| set("XDG_CACHE_HOME").map(|d| d.join("reslab")))
        .or_else(|| set("HOME").map(|d| d.join(".cache/reslab")))
}

/// One file of entries of type `T`, each under a key that says what it was measured for.
#[derive(Debug, Clone)]
pub struct Cache {
    path: Option<PathBuf>,
}

impl Cache {
    /// The file `name` in the cache folder.
    pub fn named(name: &str) -> Cache {
        Cache { path: cache_dir().map(|d| d.join(name)) }
    }

    /// The file at `path` (tests use a temporary one).
    pub fn at(path: impl Into<PathBuf>) -> Cache {
        Cache { path: Some(path.into()) }
    }

    /// The file, where there is a cache folder.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The entry under `key`, if one was stored.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let mut entries = self.entries();
        entries.remove(key).and_then(|value| value.try_into().ok())
    }

    /// Stores `value` under `key` beside the other entries (written atomically; a concurrent
    /// writer may win, which costs a measurement, not a wrong answer). A failure is a warning.
    pub fn put<T: Serialize>(&self, key: &str, value: &T) {
        let Some(path) = &self.path else { return };
        let mut entries = self.entries();
        match toml::Value::try_from(value) {
            Ok(value) => entries.insert(key.to_string(), value),
            Err(e) => return crate::eprint_line!("warning: could not cache a measurement in {}: {e}", path.display()),
        };
        let text = toml::to_string(&entries).expect("a table of TOML values serialises");
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .map_err(anyhow::Error::from)
            .and_then(|_| write_file(path, text.as_bytes()));
        if let Err(e) = written {
            crate::eprint_line!("warning: could not write the cache {}: {e:#}", path.display());
        }
    }

    fn entries(&self) -> BTreeMap<String, toml::Value> {
        let Some(path) = &self.path else { return BTreeMap::new() };
        let Ok(text) = std::fs::read_to_string(path) else { return BTreeMap::new() };
        toml::from_str(&text).unwrap_or_else(|e: toml::de::Error| {
            let first = e.to_string().lines().next().unwrap_or_default().to_string();
            crate::eprint_line!("warning: ignoring the unreadable cache {} ({first}); measuring again", path.display());
            BTreeMap::new()
        })
    }
}

/// The value of `name` in the first processor's entry of Linux's `/proc/cpuinfo` (`model name`,
/// `flags`); empty elsewhere.
pub fn cpu_info_field(name: &str) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpuinfo
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(key, _)| key.trim() == name)
        .map_or_else(String::new, |(_, value)| value.trim().to_string())
}

/// What this machine is, for a cache key: the CPU's model and a digest of its feature flags (as
/// Linux lists them), or the GPU `gpu` names.
pub fn machine_key(gpu: Option<&str>) -> String {
    if let Some(gpu) = gpu {
        return format!("gpu {gpu}");
    }
    let flags = Sha256::digest(cpu_info_field("flags").as_bytes());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!(
        "cpu {} ({cores} cores, flags {:02x}{:02x}{:02x}{:02x})",
        cpu_info_field("model name"),
        flags[0],
        flags[1],
        flags[2],
        flags[3]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_kept_by_key_and_a_corrupt_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("sub/choices.toml"));
        assert_eq!(cache.get::<f64>("a"), None);
        cache.put("a", &1.5);
        cache.put("b c", &2.5);
        assert_eq!(cache.get::<f64>("a"), Some(1.5));
        assert_eq!(cache.get::<f64>("b c"), Some(2.5));
        std::fs::write(cache.path().unwrap(), "not = [toml").unwrap();
        assert_eq!(cache.get::<f64>("a"), None, "a corrupt file reads as empty");
        cache.put("a", &3.0);
        assert_eq!(cache.get::<f64>("a"), Some(3.0), "and is rewritten");
    }

    #[test]
    fn the_machine_key_names_the_cpu_or_the_gpu() {
        assert!(machine_key(None).starts_with("cpu "));
        assert_eq!(machine_key(Some("NVIDIA A100")), "gpu NVIDIA A100");
    }
}
