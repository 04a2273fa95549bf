//! Data parallel training over libtorch's c10d ([`super::c10d`]): one run on several processes
//! (ranks), each with its own device, as PyTorch's DistributedDataParallel does it.
//!
//! - Where a rank sits comes from the environment ([`World::from_env`]): torchrun's variables
//!   (`reslab launch` sets the same) or Slurm's.
//! - Every rank builds the same model from the same seed; rank 0's parameters, BN statistics and
//!   momentum are then broadcast, so a resumed run (rank 0 alone reads the checkpoint) starts
//!   identical everywhere.
//! - The configuration's batch size is the global batch: each rank takes its contiguous shard of
//!   every batch ([`DataParallel::shard`]), so the data order stays a function of the seed and a
//!   run a function of its configuration and world size.
//! - After backward, the gradients (one flat buffer, [`Sgd`]) are summed in buckets and divided
//!   by the world size: every rank then takes the same step. Unlike PyTorch's DDP the reduction
//!   does not overlap the backward pass (tch has no autograd hooks).
//! - BN statistics are per rank, over its shard, as in DDP without SyncBatchNorm: N ranks with
//!   batch B/N each do not compute exactly what one rank with batch B does (docs/clusters.md).

use super::c10d::{Backend, ProcessGroup, Store};
use super::sgd::Sgd;
use crate::run::checkpoint::LoopState;
use anyhow::{bail, Context, Result};
use std::ops::Range;
use std::time::{Duration, Instant};
use tch::{nn, Device, Kind, Tensor};

/// Gradients are summed in buckets of at most this many bytes, started together (PyTorch DDP's
/// default `bucket_cap_mb`), so the backend can reduce one while sending another.
pub const BUCKET_BYTES: i64 = 25 << 20;

/// How long a rank waits for the others (rendezvous and every collective) unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// What a failed collective means for the user.
const STOPPED: &str = "another rank died or stopped answering (its own error says why)";

/// Where this process sits in a distributed run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct World {
    /// This process's rank among all, 0..size; rank 0 leads.
    pub rank: usize,
    /// Processes in the run.
    pub size: usize,
    /// Rank among the processes on this machine (it picks the GPU).
    pub local_rank: usize,
    /// Processes on this machine.
    pub local_size: usize,
    /// Rank 0's host and port: the rendezvous.
    pub master_addr: String,
    /// The rendezvous port on rank 0's host.
    pub master_port: u16,
    /// Rank 0 only: a socket already listening at the master port, inherited from the launcher
    /// ([`MASTER_LISTEN_FD`]), so the port cannot be taken between its choice and the rendezvous.
    pub master_listen_fd: Option<i32>,
}

/// The variable through which a launcher hands rank 0 the rendezvous socket it bound (its file
/// descriptor number).
pub const MASTER_LISTEN_FD: &str = "RESLAB_MASTER_LISTEN_FD";

/// Makes `command` (rank 0) inherit `listener`, bound at the rendezvous port, and serve the
/// rendezvous on it: the port is held from its choice until rank 0 listens, so no other process
/// can take it in between. The launcher may close its own copy once the child is spawned.
pub fn hand_over_listener(command: &mut std::process::Command, listener: &std::net::TcpListener) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let fd = listener.as_raw_fd();
    command.env(MASTER_LISTEN_FD, fd.to_string());
    // SAFETY: runs in the forked child before exec; fcntl is async-signal-safe and touches only
    // the child's copy of the descriptor table (the parent's socket stays close-on-exec, so no
    // other child inherits it).
    unsafe {
        command.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

impl World {
    /// The world of this process: torchrun's `RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`
    /// (and `LOCAL_RANK`, `LOCAL_WORLD_SIZE`), as `reslab launch` sets them; else Slurm's
    /// `SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`, `SLURM_TASKS_PER_NODE`, with rank 0 on the
    /// first host of `SLURM_JOB_NODELIST` and the port `MASTER_PORT` or 29500 + the job id mod 1000.
    pub fn from_env() -> Result<World> {
        World::from_vars(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// [`World::from_env`] over any source of variables.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<World> {
        let number = |name: &str| -> Result<Option<usize>> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| anyhow::anyhow!("{name} is '{v}'; expected a non-negative whole number"))
                })
                .transpose()
        };
        let required = |name: &str, of: &str| -> Result<String> {
            var(name).with_context(|| format!("{name} is not set; {of} sets it for every rank"))
        };
        let mut world = if var("RANK").is_some() || var("WORLD_SIZE").is_some() {
            let of = "reslab launch (or torchrun)";
            let rank = number("RANK")?.with_context(|| format!("RANK is not set; {of} sets it for every rank"))?;
            let size =
                number("WORLD_SIZE")?.with_context(|| format!("WORLD_SIZE is not set; {of} sets it for every rank"))?;
            World {
                rank,
                size,
                local_rank: number("LOCAL_RANK")?.unwrap_or(rank),
                local_size: number("LOCAL_WORLD_SIZE")?.unwrap_or(size),
                master_addr: required("MASTER_ADDR", of)?,
                master_port: port(&required("MASTER_PORT", of)?)?,
                master_listen_fd: None,
            }
        } else if var("SLURM_PROCID").is_some() {
            let of = "srun";
            let rank = number("SLURM_PROCID")?.expect("checked above");
            let size = number("SLURM_NTASKS")?.with_context(|| format!("SLURM_NTASKS is not set; {of} sets it"))?;
            let nodes = required("SLURM_JOB_NODELIST", of)?;
            let master_port = match var("MASTER_PORT") {
                Some(p) => port(&p)?,
                None => 29500 + (number("SLURM_JOB_ID")?.unwrap_or(0) % 1000) as u16,
            };
            World {
                rank,
                size,
                local_rank: number("SLURM_LOCALID")?.unwrap_or(0),
                local_size: var("SLURM_TASKS_PER_NODE").as_deref().and_then(first_count).unwrap_or(1),
                master_addr: match var("MASTER_ADDR") {
                    Some(addr) => addr,
                    None => first_host(&nodes)?,
                },
                master_port,
                master_listen_fd: None,
            }
        } else {
            bail!(
                "train --distributed: no rank in the environment; expected RANK, WORLD_SIZE, MASTER_ADDR and \
                 MASTER_PORT (reslab launch --nproc N -- train ..., or torchrun, sets them) or Slurm's \
                 SLURM_PROCID, SLURM_NTASKS and SLURM_JOB_NODELIST (srun)"
            );
        };
        if let Some(fd) = var(MASTER_LISTEN_FD).filter(|_| world.rank == 0) {
            world.master_listen_fd = Some(fd.trim().parse::<i32>().ok().filter(|&fd| fd >= 0).with_context(|| {
                format!("{MASTER_LISTEN_FD} is '{fd}'; expected the number of an inherited listening socket")
            })?);
        }
        if world.size == 0 {
            bail!("the world size is 0; expected at least 1 process");
        }
        if world.rank >= world.size {
            bail!(
                "rank {} is out of range for a world of {} processes; expected 0 to {}",
                world.rank,
                world.size,
                world.size - 1
            );
        }
        if world.local_size == 0 || world.local_rank >= world.local_size {
            bail!("local rank {} is out of range for {} processes on this machine", world.local_rank, world.local_size);
        }
        Ok(world)
    }

    /// CPU threads for each rank when the run asks for one per core (0): the cores shared among
    /// this machine's ranks.
    pub fn threads(&self, threads: usize) -> usize {
        if threads != 0 {
            return threads;
        }
        (super::runtime::thread_count(0) / self.local_size).max(1)
    }
}

fn port(text: &str) -> Result<u16> {
    match text.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => bail!("MASTER_PORT is '{text}'; expected a port number from 1 to 65535"),
    }
}

/// The first host of a Slurm node list: `node[07-09,12],gpu1` -> `node07`.
pub fn first_host(nodelist: &str) -> Result<String> {
    let bad = || anyhow::anyhow!("SLURM_JOB_NODELIST is '{nodelist}'; expected a Slurm host list such as node[01-04]");
    let list = nodelist.trim();
    let first = match list.find([',', '[']) {
        Some(i) if list.as_bytes()[i] == b',' => &list[..i],
        Some(i) => {
            let close = list[i..].find(']').ok_or_else(bad)? + i;
            let range = list[i + 1..close].split(',').next().ok_or_else(bad)?;
            let start = range.split('-').next().ok_or_else(bad)?;
            // What follows the brackets, up to the next host, is the rest of the first name (which
            // may hold brackets of its own).
            let rest = &list[close + 1..];
            let suffix = match rest.find([',', '[']) {
                Some(j) if rest.as_bytes()[j] == b',' => rest[..j].to_string(),
                Some(_) => first_host(rest)?,
                None => rest.to_string(),
            };
            return Ok(format!("{}{start}{suffix}", &list[..i]));
        }
        None => list,
    };
    if first.is_empty() {
        return Err(bad());
    }
    Ok(first.to_string())
}

/// The first count of `SLURM_TASKS_PER_NODE` (`2(x3),1` -> 2).
fn first_count(tasks_per_node: &str) -> Option<usize> {
    tasks_per_node.split([',', '(']).next()?.trim().parse().ok().filter(|&n| n > 0)
}

/// One rank's part of a data parallel run.
pub struct DataParallel {
    group: ProcessGroup,
    world: World,
    /// Where this rank's collectives run: NCCL reduces CUDA tensors only, Gloo CPU tensors.
    device: Device,
    /// Time spent summing gradients since the last [`DataParallel::take_reduce_time`].
    reduce_time: Duration,
}

impl DataParallel {
    /// Joins the run's other ranks (rank 0 listens at the master address); returns once all are
    /// there, or fails after `timeout`, which also bounds every later collective.
    pub fn join(world: &World, device: Device, timeout: Duration) -> Result<DataParallel> {
        let backend = if device.is_cuda() { Backend::Nccl } else { Backend::Gloo };
        let store =
            Store::tcp(&world.master_addr, world.master_port, world.rank, world.master_listen_fd, world.size, timeout)?;
        // Gloo's transport binds where MASTER_ADDR points when that is this machine's loopback
        // (one machine), else to this machine's own hostname.
        let loopback = matches!(world.master_addr.as_str(), "127.0.0.1" | "localhost" | "::1");
        let hostname = loopback.then_some(world.master_addr.as_str());
        let group = ProcessGroup::new(backend, store, world.rank, world.size, hostname, timeout)?;
        Ok(DataParallel { group, world: world.clone(), device, reduce_time: Duration::ZERO })
    }

    /// Where this process sits in the run.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// Rank 0: the one that reads and writes the run directory.
    pub fn is_leader(&self) -> bool {
        self.world.rank == 0
    }

    /// This rank's part of a global batch of `batch` images: a contiguous slice, the same size on
    /// every rank (the run checks the batch divides evenly).
    pub fn shard(&self, batch: usize) -> Range<usize> {
        shard(batch, self.world.rank, self.world.size)
    }

    /// Makes every rank's model and optimizer state rank 0's: parameters, BN statistics and
    /// momentum.
    pub fn broadcast_state(&mut self, vs: &nn::VarStore, sgd: &mut Sgd) -> Result<()> {
        tch::no_grad(|| {
            let mut tensors: Vec<Tensor> = vec![sgd.flat_values().shallow_clone(), sgd.flat_momentum().shallow_clone()];
            let mut buffers: Vec<(Tensor, Tensor)> = Vec::new();
            // By name: a VarStore's variables come in no fixed order, and every rank must send
            // and receive the same tensors in the same order.
            let mut statistics: Vec<(String, Tensor)> =
                vs.variables().into_iter().filter(|(_, t)| !t.requires_grad()).collect();
            statistics.sort_by(|a, b| a.0.cmp(&b.0));
            for (_, t) in statistics {
                // Gloo sends contiguous memory; a BN statistic is one-dimensional, so always is.
                let contiguous = t.contiguous();
                buffers.push((t, contiguous.shallow_clone()));
                tensors.push(contiguous);
            }
            self.group.broadcast(&mut tensors, 0)?;
            for (mut original, received) in buffers {
                original.copy_(&received);
            }
            Ok(())
        })
    }

    /// Rank 0's `bytes` on every rank (other ranks pass anything; their bytes are replaced).
    pub fn broadcast_bytes(&mut self, bytes: &[u8]) -> Result<Vec<u8>> {
        let mut length = vec![Tensor::from_slice(&[bytes.len() as i64]).to_device(self.device)];
        self.group.broadcast(&mut length, 0)?;
        let length = length[0].int64_value(&[0]) as usize;
        let mut padded = bytes.to_vec();
        padded.resize(length, 0);
        let mut data = vec![Tensor::from_slice(&padded).to_device(self.device)];
        self.group.broadcast(&mut data, 0)?;
        Vec::<u8>::try_from(&data[0].to_device(Device::Cpu)).context("reading the broadcast bytes")
    }

    /// Rank 0's training loop state on every rank.
    pub fn broadcast_loop_state(&mut self, state: &LoopState) -> Result<LoopState> {
        let text = toml::to_string(state).expect("a loop state always serialises");
        let received = self.broadcast_bytes(text.as_bytes())?;
        let text = String::from_utf8(received).context("the loop state rank 0 sent is not text")?;
        toml::from_str(&text).context("the loop state rank 0 sent is unreadable")
    }

    /// Averages the gradients (after backward) over the ranks, in buckets of [`BUCKET_BYTES`].
    pub fn average_gradients(&mut self, sgd: &mut Sgd) -> Result<()> {
        let started = Instant::now();
        let grads = sgd.flat_gradients();
        let total = grads.size()[0];
        let per_bucket = (BUCKET_BYTES / grads.kind().elt_size_in_bytes() as i64).max(1);
        let mut buckets: Vec<Tensor> = (0..total)
            .step_by(per_bucket as usize)
            .map(|start| grads.narrow(0, start, per_bucket.min(total - start)))
            .collect();
        self.group.all_reduce_sum(&mut buckets).context(STOPPED)?;
        let _ = grads.g_div_scalar_(self.world.size as f64);
        self.reduce_time += started.elapsed();
        Ok(())
    }

    /// Sums `values` over the ranks (a few per-step statistics: loss, errors, a stop request), on
    /// this rank's device.
    pub fn sum(&mut self, values: &Tensor) -> Result<Tensor> {
        let mut summed = vec![values.to_device(self.device).to_kind(Kind::Double).contiguous()];
        self.group.all_reduce_sum(&mut summed).context(STOPPED)?;
        Ok(summed.pop().expect("one tensor"))
    }

    /// The time spent averaging gradients since the last call.
    pub fn take_reduce_time(&mut self) -> Duration {
        std::mem::take(&mut self.reduce_time)
    }
}

/// Rank `rank`'s slice of `n` items shared by `size` ranks: contiguous, in rank order, the first
/// `n % size` ranks taking one more.
pub fn shard(n: usize, rank: usize, size: usize) -> Range<usize> {
    let (base, extra) = (n / size, n % size);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn world(vars: &[(&str, &str)]) -> Result<World> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        World::from_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn torchrun_variables_give_the_world() {
        let w = world(&[("RANK", "3"), ("WORLD_SIZE", "4"), ("MASTER_ADDR", "10.0.0.1"), ("MASTER_PORT", "29400")])
            .unwrap();
        assert_eq!(
            w,
            World {
                rank: 3,
                size: 4,
                local_rank: 3,
                local_size: 4,
                master_addr: "10.0.0.1".into(),
                master_port: 29400,
                master_listen_fd: None,
            }
        );
        // The launcher's socket reaches rank 0 only.
        let launched = |rank: &str| {
            world(&[
                ("RANK", rank),
                ("WORLD_SIZE", "2"),
                ("MASTER_ADDR", "127.0.0.1"),
                ("MASTER_PORT", "29400"),
                (MASTER_LISTEN_FD, "5"),
            ])
            .unwrap()
            .master_listen_fd
        };
        assert_eq!((launched("0"), launched("1")), (Some(5), None));
        let w = world(&[
            ("RANK", "5"),
            ("WORLD_SIZE", "8"),
            ("LOCAL_RANK", "1"),
            ("LOCAL_WORLD_SIZE", "4"),
            ("MASTER_ADDR", "a"),
            ("MASTER_PORT", "1"),
        ])
        .unwrap();
        assert_eq!((w.local_rank, w.local_size), (1, 4));
    }

    #[test]
    fn slurm_variables_give_the_world_with_rank_0_on_the_first_node() {
        let w = world(&[
            ("SLURM_PROCID", "2"),
            ("SLURM_NTASKS", "4"),
            ("SLURM_LOCALID", "0"),
            ("SLURM_TASKS_PER_NODE", "2(x2)"),
            ("SLURM_JOB_NODELIST", "gpu[07-08]"),
            ("SLURM_JOB_ID", "123456"),
        ])
        .unwrap();
        assert_eq!(
            w,
            World {
                rank: 2,
                size: 4,
                local_rank: 0,
                local_size: 2,
                master_addr: "gpu07".into(),
                master_port: 29956,
                master_listen_fd: None
            }
        );
    }

    #[test]
    fn bad_or_missing_variables_are_one_line_errors() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[], "no rank in the environment"),
            (&[("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h")], "MASTER_PORT is not set"),
            (
                &[("RANK", "2"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "1")],
                "rank 2 is out of range",
            ),
            (&[("RANK", "x"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "1")], "RANK is 'x'"),
            (
                &[("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "99999")],
                "MASTER_PORT is '99999'",
            ),
            (
                &[
                    ("RANK", "0"),
                    ("WORLD_SIZE", "2"),
                    ("MASTER_ADDR", "h"),
                    ("MASTER_PORT", "1"),
                    (MASTER_LISTEN_FD, "x"),
                ],
                "RESLAB_MASTER_LISTEN_FD is 'x'; expected",
            ),
        ];
        for (vars, expected) in cases {
            let error = world(vars).unwrap_err().to_string();
            assert!(error.contains(expected) && !error.contains('\n'), "{vars:?}: {error}");
        }
    }

    #[test]
    fn the_first_host_of_a_slurm_node_list() {
        assert_eq!(first_host("node1").unwrap(), "node1");
        assert_eq!(first_host("node1,node2").unwrap(), "node1");
        assert_eq!(first_host("node[07-09,12],gpu1").unwrap(), "node07");
        assert_eq!(first_host("rack[3,5]-n[1-2]").unwrap(), "rack3-n1");
        assert!(first_host("node[01").is_err());
        assert!(first_host("").is_err());
        assert_eq!(first_count("2(x3),1"), Some(2));
        assert_eq!(first_count("4"), Some(4));
    }

    #[test]
    fn shards_cover_a_batch_in_order_without_overlap() {
        for (n, size) in [(128, 1), (128, 2), (128, 3), (10, 4)] {
            let shards: Vec<Range<usize>> = (0..size).map(|rank| shard(n, rank, size)).collect();
            assert_eq!(shards[0].start, 0);
            assert_eq!(shards[size - 1].end, n);
            assert!(shards.windows(2).all(|w| w[0].end == w[1].start), "{shards:?}");
            let lengths: Vec<usize> = shards.iter().map(|s| s.len()).collect();
            assert!(lengths.iter().max().unwrap() - lengths.iter().min().unwrap() <= 1, "{lengths:?}");
        }
    }
}
