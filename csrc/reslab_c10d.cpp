// libtorch's own distributed layer (c10d) for Rust: stores, process groups and the three
// collectives data-parallel training needs. tch has no torch.distributed, but the libtorch it
// links ships c10d (TCPStore, FileStore, ProcessGroupGloo in libtorch_cpu; ProcessGroupNCCL in
// libtorch_cuda), so nothing here reimplements a rendezvous or a reduction.
//
// Compiled by build.rs against the same libtorch headers and C++ ABI as torch-sys, plus the few
// gloo headers ProcessGroupGloo.hpp includes (the wheel ships c10d's headers but not gloo's; they
// are vendored in csrc/third_party/gloo). Each function catches every C++ exception and returns
// its message (freed with reslab_free_error, in reslab_native.cpp) or null. Every wait has a
// timeout, so a rank that dies becomes an error on the others, never a hang.

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef RESLAB_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <string>
#include <vector>

#include "reslab_guarded.h"

using reslab::guarded;

namespace {
std::chrono::milliseconds millis(int64_t ms) { return std::chrono::milliseconds(ms); }

// Waits for `work` at most `timeout_ms`; a collective that does not finish in time, or fails on
// another rank, is an exception with c10d's message.
void wait_for(const c10::intrusive_ptr<c10d::Work>& work, int64_t timeout_ms, const char* what) {
  if (!work->wait(millis(timeout_ms))) {
    TORCH_CHECK(false, what, " did not finish within ", timeout_ms / 1000.0, " s");
  }
}

}  // namespace

struct ReslabStore {
  c10::intrusive_ptr<c10d::Store> store;
};

struct ReslabProcessGroup {
  c10::intrusive_ptr<c10d::Backend> backend;
  int64_t timeout_ms;
};

extern "C" {

// A TCPStore at host:port. Rank 0 (`is_server`) listens there and waits for all `world_size`
// ranks to connect; the others connect, retrying until `timeout_ms`. A server given
// `listen_fd` >= 0 serves on that socket, already bound to `port` by whoever started it, instead
// of binding one itself (so no other process can take the port in between).
char* reslab_store_tcp(const char* host, int port, int is_server, int listen_fd, int world_size,
                       int64_t timeout_ms, ReslabStore** out) {
  return guarded([&] {
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(port);
    options.isServer = is_server != 0;
    if (is_server != 0 && listen_fd >= 0) {
      options.masterListenFd = listen_fd;
    }
    options.numWorkers = world_size;
    options.waitWorkers = true;
    options.timeout = millis(timeout_ms);
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(host), options);
    *out = new ReslabStore{store};
  });
}

// A FileStore on a file every rank can reach (a shared filesystem, or one machine).
char* reslab_store_file(const char* path, int world_size, int64_t timeout_ms, ReslabStore** out) {
  return guarded([&] {
    auto store = c10::make_intrusive<c10d::FileStore>(std::string(path), world_size);
    store->setTimeout(millis(timeout_ms));
    *out = new ReslabStore{store};
  });
}

void reslab_store_free(ReslabStore* store) { delete store; }

// A Gloo process group of `size` ranks meeting through `store`. Its transport binds to the
// address `hostname` resolves to, or, when empty, to what this machine's hostname resolves to
// (the loopback address when it resolves to nothing), as torch.distributed does.
char* reslab_process_group_gloo(ReslabStore* store, int rank, int size, const char* hostname,
                                int64_t timeout_ms, ReslabProcessGroup** out) {
  return guarded([&] {
    auto options = c10d::ProcessGroupGloo::Options::create(millis(timeout_ms));
    std::string host(hostname);
    options->devices.push_back(host.empty() ? c10d::ProcessGroupGloo::createDefaultDevice()
                                            : c10d::ProcessGroupGloo::createDeviceForHostname(host));
    auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(store->store, rank, size, options);
    *out = new ReslabProcessGroup{group, timeout_ms};
  });
}

// An NCCL process group (CUDA tensors only); built only with the `nccl` cargo feature.
char* reslab_process_group_nccl(ReslabStore* store, int rank, int size, int64_t timeout_ms,
                                ReslabProcessGroup** out) {
  return guarded([&] {
#ifdef RESLAB_NCCL
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = millis(timeout_ms);
    auto group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store->store, rank, size, options);
    *out = new ReslabProcessGroup{group, timeout_ms};
#else
    (void)store, (void)rank, (void)size, (void)timeout_ms, (void)out;
    TORCH_CHECK(false, "this reslab was built without NCCL; rebuild it with --features nccl");
#endif
  });
}

void reslab_process_group_free(ReslabProcessGroup* group) { delete group; }

// Sums each of `tensors` in place across the ranks (every rank passes the same shapes in the
// same order). All reductions are started before the first is waited for, so the backend can
// run them concurrently (Gloo on its worker threads).
char* reslab_all_reduce_sum(ReslabProcessGroup* group, at::Tensor** tensors, int64_t count) {
  return guarded([&] {
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::SUM;
    options.timeout = millis(group->timeout_ms);
    for (int64_t i = 0; i < count; ++i) {
      std::vector<at::Tensor> one{*tensors[i]};
      works.push_back(group->backend->allreduce(one, options));
    }
    for (auto& work : works) wait_for(work, group->timeout_ms, "an all-reduce");
  });
}

// Copies each of `tensors` from rank `root` to every rank, in place.
char* reslab_broadcast(ReslabProcessGroup* group, at::Tensor** tensors, int64_t count, int root) {
  return guarded([&] {
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    c10d::BroadcastOptions options;
    options.rootRank = root;
    options.timeout = millis(group->timeout_ms);
    for (int64_t i = 0; i < count; ++i) {
      std::vector<at::Tensor> one{*tensors[i]};
      works.push_back(group->backend->broadcast(one, options));
    }
    for (auto& work : works) wait_for(work, group->timeout_ms, "a broadcast");
  });
}

// Returns once every rank has called it (or fails after the group's timeout).
char* reslab_barrier(ReslabProcessGroup* group) {
  return guarded([&] {
    c10d::BarrierOptions options;
    options.timeout = millis(group->timeout_ms);
    wait_for(group->backend->barrier(options), group->timeout_ms, "a barrier");
  });
}

}  // extern "C"
