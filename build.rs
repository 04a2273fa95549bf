//! Lets the binaries and tests find libtorch at run time without LD_LIBRARY_PATH: torch-sys
//! reports the directory it linked against, and we record it as an rpath.

fn main() {
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
}
