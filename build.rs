//! Two jobs:
//! - lets the binaries and tests find libtorch at run time without LD_LIBRARY_PATH: torch-sys
//!   reports the directory it linked against, and we record it as an rpath;
//! - compiles `csrc/reslab_native.cpp` (libtorch operations tch does not expose) against that same
//!   libtorch's headers, with the C++ ABI that libtorch was built with.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=csrc/reslab_native.cpp");
    let lib = PathBuf::from(std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys reports where libtorch is"));
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    let include = lib.parent().expect("libtorch's lib/ has a parent").join("include");
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={}", cxx11_abi()))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("csrc/reslab_native.cpp")
        .compile("reslab_native");
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
