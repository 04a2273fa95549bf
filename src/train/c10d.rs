//! Bindings to `csrc/reslab_c10d.cpp`: libtorch's own distributed layer (c10d). A store is where
//! the ranks meet; a process group runs collectives over a backend (Gloo on CPUs, NCCL on GPUs
//! with the `nccl` feature). Every wait has the group's timeout, so a dead rank is an error here,
//! never a hang; every error is c10d's own message, on one line.

use crate::native::check;
use anyhow::{Context, Result};
use std::ffi::{c_char, c_int, CString};
use std::path::Path;
use std::time::Duration;
use tch::Tensor;
use torch_sys::C_tensor;

#[repr(C)]
struct RawStore {
    _private: [u8; 0],
}

#[repr(C)]
struct RawGroup {
    _private: [u8; 0],
}

extern "C" {
    fn reslab_store_tcp(
        host: *const c_char,
        port: c_int,
        is_server: c_int,
        listen_fd: c_int,
        world_size: c_int,
        timeout_ms: i64,
        out: *mut *mut RawStore,
    ) -> *mut c_char;
    fn reslab_store_file(
        path: *const c_char,
        world_size: c_int,
        timeout_ms: i64,
        out: *mut *mut RawStore,
    ) -> *mut c_char;
    fn reslab_store_free(store: *mut RawStore);
    fn reslab_process_group_gloo(
        store: *mut RawStore,
        rank: c_int,
        size: c_int,
        hostname: *const c_char,
        timeout_ms: i64,
        out: *mut *mut RawGroup,
    ) -> *mut c_char;
    fn reslab_process_group_nccl(
        store: *mut RawStore,
        rank: c_int,
        size: c_int,
        timeout_ms: i64,
        out: *mut *mut RawGroup,
    ) -> *mut c_char;
    fn reslab_process_group_free(group: *mut RawGroup);
    fn reslab_all_reduce_sum(group: *mut RawGroup, tensors: *const *mut C_tensor, count: i64) -> *mut c_char;
    fn reslab_broadcast(group: *mut RawGroup, tensors: *const *mut C_tensor, count: i64, root: c_int) -> *mut c_char;
    fn reslab_barrier(group: *mut RawGroup) -> *mut c_char;
}

/// c10d's message without gloo's source location and sign-off, which say nothing to a user:
/// `[/path/pair.cc:553] Connection closed by peer ... GLHF!` -> `Connection closed by peer ...`.
pub fn tidy(message: &str) -> String {
    let mut text = message.trim();
    if text.starts_with('[') {
        if let Some(end) = text.find("] ") {
            if text[..end].contains(".cc:") || text[..end].contains(".cpp:") {
                text = text[end + 2..].trim_start();
            }
        }
    }
    if let Some(glhf) = text.find(" GLHF!") {
        text = &text[..glhf];
    }
    text.trim_end().to_string()
}

/// The shim's error, if any, as `what: c10d's message, tidied`.
fn checked(error: *mut c_char, what: &str) -> Result<()> {
    check(error, "").map_err(|e| anyhow::anyhow!("{what}: {}", tidy(e.to_string().trim_start_matches(": "))))
}

fn millis(timeout: Duration) -> i64 {
    timeout.as_millis().min(i64::MAX as u128) as i64
}

fn c_string(text: &str, what: &str) -> Result<CString> {
    CString::new(text).with_context(|| format!("{what} '{text}' contains a NUL byte"))
}

/// Where the ranks of a run meet: a key-value store they all reach.
pub struct Store {
    raw: *mut RawStore,
}

// SAFETY: c10d's stores are thread-safe; the pointer is owned and freed once.
unsafe impl Send for Store {}

impl Store {
    /// A TCP store at `host:port`: rank 0 listens there (and fails at once if the port is taken)
    /// and waits until all `world_size` ranks have connected; the others connect to it, retrying,
    /// for at most `timeout`. Rank 0 given `listen_fd` serves on that inherited socket, already
    /// bound to `port` (see [`crate::train::distributed::hand_over_listener`]).
    pub fn tcp(
        host: &str,
        port: u16,
        rank: usize,
        listen_fd: Option<i32>,
        world_size: usize,
        timeout: Duration,
    ) -> Result<Store> {
        let host_c = c_string(host, "host")?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: plain values and a NUL-terminated string; on success `raw` is a new store.
        let error = unsafe {
            reslab_store_tcp(
                host_c.as_ptr(),
                port as c_int,
                (rank == 0) as c_int,
                listen_fd.unwrap_or(-1),
                world_size as c_int,
                millis(timeout),
                &mut raw,
            )
        };
        let role = if rank == 0 { "listening" } else { "connecting" };
        checked(error, &format!("rank {rank}: {role} at {host}:{port} (the rendezvous)"))?;
        Ok(Store { raw })
    }

    /// A store in the file `path`, which every rank must reach (one machine, or a shared
    /// filesystem); the file must not be left over from an earlier run.
    pub fn file(path: &Path, world_size: usize, timeout: Duration) -> Result<Store> {
        let path_c = c_string(&path.display().to_string(), "store file")?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: as in `tcp`.
        let error = unsafe { reslab_store_file(path_c.as_ptr(), world_size as c_int, millis(timeout), &mut raw) };
        checked(error, &format!("opening the file store {}", path.display()))?;
        Ok(Store { raw })
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: created by the shim, freed once.
        unsafe { reslab_store_free(self.raw) }
    }
}

/// Which library carries a process group's collectives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// CPU tensors, over TCP (libtorch_cpu).
    Gloo,
    /// CUDA tensors, GPU to GPU (libtorch_cuda; needs the `nccl` feature).
    Nccl,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Gloo => "gloo",
            Backend::Nccl => "nccl",
        })
    }
}

/// The ranks of one run and the collectives between them. Every rank must call the same
/// collectives with tensors of the same shapes, in the same order.
pub struct ProcessGroup {
    raw: *mut RawGroup,
    rank: usize,
    size: usize,
    // Kept alive as long as the group: c10d's backends hold it for later rendezvous.
    _store: Store,
}

// SAFETY: the group is used by one thread at a time (`&mut self` for collectives).
unsafe impl Send for ProcessGroup {}

impl ProcessGroup {
    /// Joins the group of `size` ranks meeting at `store`, as `rank`. Gloo binds its transport to
    /// the address `hostname` resolves to (`None`: this machine's hostname, or the loopback
    /// address). Returns once every rank has joined, or fails after `timeout`, which then bounds
    /// every collective.
    pub fn new(
        backend: Backend,
        store: Store,
        rank: usize,
        size: usize,
        hostname: Option<&str>,
        timeout: Duration,
    ) -> Result<ProcessGroup> {
        let mut raw = std::ptr::null_mut();
        let hostname_c = c_string(hostname.unwrap_or(""), "hostname")?;
        // SAFETY: a live store; on success `raw` is a new process group.
        let error = unsafe {
            match backend {
                Backend::Gloo => reslab_process_group_gloo(
                    store.raw,
                    rank as c_int,
                    size as c_int,
                    hostname_c.as_ptr(),
                    millis(timeout),
                    &mut raw,
                ),
                Backend::Nccl => {
                    reslab_process_group_nccl(store.raw, rank as c_int, size as c_int, millis(timeout), &mut raw)
                }
            }
        };
        checked(error, &format!("rank {rank} of {size}: joining the {backend} process group"))?;
        Ok(ProcessGroup { raw, rank, size, _store: store })
    }

    /// This process's rank, 0..size.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Processes in the group.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Replaces each tensor (dense, contiguous) by its sum over all ranks. The reductions run
    /// concurrently; the call returns when all are done.
    pub fn all_reduce_sum(&mut self, tensors: &mut [Tensor]) -> Result<()> {
        let pointers: Vec<*mut C_tensor> = tensors.iter_mut().map(|t| t.as_mut_ptr()).collect();
        // SAFETY: live tch tensors, borrowed mutably for the call.
        let error = unsafe { reslab_all_reduce_sum(self.raw, pointers.as_ptr(), pointers.len() as i64) };
        checked(error, &format!("rank {}: all-reduce", self.rank))
    }

    /// Copies each tensor (dense, contiguous) of rank `root` into the same tensor of every rank.
    pub fn broadcast(&mut self, tensors: &mut [Tensor], root: usize) -> Result<()> {
        let pointers: Vec<*mut C_tensor> = tensors.iter_mut().map(|t| t.as_mut_ptr()).collect();
        // SAFETY: as in `all_reduce_sum`.
        let error = unsafe { reslab_broadcast(self.raw, pointers.as_ptr(), pointers.len() as i64, root as c_int) };
        checked(error, &format!("rank {}: broadcast from rank {root}", self.rank))
    }

    /// Returns once every rank has reached it.
    pub fn barrier(&mut self) -> Result<()> {
        // SAFETY: a live group.
        checked(unsafe { reslab_barrier(self.raw) }, &format!("rank {}: barrier", self.rank))
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: created by the shim, freed once (before its store).
        unsafe { reslab_process_group_free(self.raw) }
    }
}

#[cfg(test)]
mod tests {
    use super::tidy;

    #[test]
    fn gloo_messages_lose_their_source_location_and_sign_off() {
        let raw =
            "rank 0: all-reduce: [/__w/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by \
                   peer [127.0.0.1]:26022. This is typically caused by a remote worker crashing. GLHF! x";
        assert_eq!(tidy(raw), raw.split(" GLHF!").next().unwrap());
        assert_eq!(
            tidy("[/__w/pair.cc:553] Connection closed by peer [127.0.0.1]:1. GLHF! x"),
            "Connection closed by peer [127.0.0.1]:1."
        );
        assert_eq!(tidy("[127.0.0.1]:1 refused"), "[127.0.0.1]:1 refused");
    }
}
