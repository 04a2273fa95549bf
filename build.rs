//! Three jobs:
//! - records the commit reslab is built from (`RESLAB_COMMIT`, for each run's `summary.toml`);
//! - lets the binaries and tests find libtorch at run time without LD_LIBRARY_PATH: torch-sys
//!   reports the directory it linked against, and we record it as an rpath;
//! - compiles `csrc/reslab_native.cpp` (libtorch operations tch does not expose),
//!   `csrc/reslab_fused.cpp` (the fused training step's BatchNorm kernels) and
//!   `csrc/reslab_c10d.cpp` (libtorch's distributed layer) against that same libtorch's headers,
//!   with the C++ ABI that libtorch was built with. The c10d shim also needs gloo's headers
//!   (vendored in `csrc/third_party/gloo`) and, with the `nccl` feature, CUDA's and NCCL's.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=csrc/reslab_native.cpp");
    println!("cargo:rerun-if-changed=csrc/reslab_fused.cpp");
    println!("cargo:rerun-if-changed=csrc/reslab_c10d.cpp");
    println!("cargo:rerun-if-changed=csrc/reslab_guarded.h");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    let lib = PathBuf::from(std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys reports where libtorch is"));
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    let include = lib.parent().expect("libtorch's lib/ has a parent").join("include");
    // Measurements cached per machine name the libtorch they were made with.
    println!("cargo:rustc-env=RESLAB_LIBTORCH_VERSION={}", libtorch_version(&include));
    println!("cargo:rustc-env=RESLAB_COMMIT={}", git_commit());
    let abi = cxx11_abi();
    let against_libtorch = || {
        let mut build = cc::Build::new();
        build
            .cpp(true)
            .pic(true)
            .warnings(false)
            .include(&include)
            .include(include.join("torch/csrc/api/include"))
            .flag("-std=c++17")
            .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
            .flag("-DGLOG_USE_GLOG_EXPORT");
        build
    };
    against_libtorch().file("csrc/reslab_native.cpp").compile("reslab_native");
    // The fused kernels run on libtorch's intra-op threads through at::parallel_for, which this
    // libtorch implements with OpenMP pragmas in its headers: they are compiled with OpenMP and
    // linked against the OpenMP runtime libtorch itself loads (its own libgomp.so.1, beside it),
    // so that there is one thread pool, not two. Without that runtime they run on one thread.
    let mut fused = against_libtorch();
    let gomp = lib.join("libgomp.so.1");
    if gomp.is_file() {
        fused.flag("-fopenmp");
        // (The 32-byte vector arguments of inlined helpers: no ABI crosses this file.)
        fused.flag("-Wno-psabi");
        println!("cargo:rustc-link-arg={}", gomp.display());
    } else {
        println!("cargo:warning=no libgomp.so.1 beside libtorch: the fused kernels run on one thread");
    }
    fused.file("csrc/reslab_fused.cpp").compile("reslab_fused");

    let mut c10d = against_libtorch();
    c10d.include("csrc/third_party/gloo").define("USE_C10D_GLOO", None).file("csrc/reslab_c10d.cpp");
    if std::env::var_os("CARGO_FEATURE_NCCL").is_some() {
        // ProcessGroupNCCL.hpp includes CUDA's and NCCL's headers: a CUDA toolkit's, or those of
        // the nvidia-* wheels a CUDA build of torch brings beside it.
        let site_packages = lib.ancestors().nth(2).expect("torch/lib sits in site-packages").to_path_buf();
        let cuda_home = PathBuf::from(std::env::var("CUDA_HOME").unwrap_or_else(|_| "/usr/local/cuda".into()));
        // (The runtime wheel lacks `crt/`, which Triton's copy of CUDA's headers has.)
        let wheels = ["nvidia/cu13/include", "nvidia/nccl/include", "triton/backends/nvidia/include"];
        let dirs = std::iter::once(cuda_home.join("include")).chain(wheels.iter().map(|w| site_packages.join(w)));
        for dir in dirs {
            if dir.is_dir() {
                c10d.include(dir);
            }
        }
        c10d.define("USE_C10D_NCCL", None).define("RESLAB_NCCL", None);
        // The NCCL process group lives in libtorch_cuda, which torch-sys links only "as needed".
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    c10d.compile("reslab_c10d");
}

/// libtorch's version (`2.13.0`) from its headers' TORCH_VERSION_MAJOR/MINOR/PATCH; `unknown`
/// where the headers do not say.
fn libtorch_version(include: &std::path::Path) -> String {
    let headers = ["torch/headeronly/version.h", "torch/csrc/api/include/torch/version.h"];
    let text = headers.iter().find_map(|h| std::fs::read_to_string(include.join(h)).ok()).unwrap_or_default();
    let part = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("#define TORCH_VERSION_{name} ")).map(|v| v.trim().to_string()))
    };
    match (part("MAJOR"), part("MINOR"), part("PATCH")) {
        (Some(major), Some(minor), Some(patch)) => format!("{major}.{minor}.{patch}"),
        _ => "unknown".into(),
    }
}

/// The commit checked out (`git rev-parse HEAD`), `-dirty` where tracked files differed from it
/// when this script ran; `unknown` without git or a repository (a source archive). The script
/// reruns when HEAD moves (a commit, a checkout), not at every edit, which would recompile the
/// C++ shims each time: a build after uncommitted edits made since then is not marked dirty.
fn git_commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(commit) = git(&["rev-parse", "HEAD"]).filter(|c| !c.is_empty()) else {
        return "unknown".into();
    };
    // HEAD names the branch; the branch's file (or packed-refs) names the commit. A worktree's
    // HEAD lives in the main repository's .git, which `--git-path` resolves.
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        // (A missing file would make cargo rerun the script at every build.)
        if let Some(path) = git(&["rev-parse", "--git-path", &name]).filter(|p| std::path::Path::new(p).is_file()) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    }
}

/// The C++ ABI libtorch was built with, asked of its Python package as torch-sys does
/// (LIBTORCH_USE_PYTORCH=1); libtorch's own default (1) otherwise.
fn cxx11_abi() -> String {
    if let Ok(abi) = std::env::var("LIBTORCH_CXX11_ABI") {
        return abi;
    }
    let python = std::env::var("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|_| "python3".into());
    Command::new(python)
        .args(["-c", "import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|abi| abi == "0" || abi == "1")
        .unwrap_or_else(|| "1".into())
}
