//! Bindings to `csrc/reslab_native.cpp`: libtorch operations that tch does not expose, built
//! against the same libtorch (build.rs).

use anyhow::{bail, Result};
use std::ffi::{c_char, CStr};
use tch::Tensor;
use torch_sys::C_tensor;

extern "C" {
    fn reslab_sgd_step(
        params: *const *mut C_tensor,
        buffers: *const *mut C_tensor,
        count: i64,
        lr: f64,
        momentum: f64,
        weight_decay: f64,
    ) -> *mut c_char;
    fn reslab_free_error(message: *mut c_char);
}

/// The error a native call returned, if any (and frees it).
fn check(error: *mut c_char, what: &str) -> Result<()> {
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null result is a NUL-terminated string malloc'ed by the shim, freed once here.
    let message = unsafe { CStr::from_ptr(error) }.to_string_lossy().into_owned();
    unsafe { reslab_free_error(error) };
    bail!("{what}: {}", message.lines().next().unwrap_or_default())
}

/// torch.optim.SGD's update (dampening 0, no Nesterov) of every parameter in `params` that has a
/// gradient, with its momentum buffer in `buffers` (same order, same shapes).
pub fn sgd_step(params: Vec<&mut Tensor>, buffers: Vec<&mut Tensor>, lr: f64, momentum: f64, wd: f64) -> Result<()> {
    assert_eq!(params.len(), buffers.len(), "one momentum buffer per parameter");
    let params: Vec<*mut C_tensor> = params.into_iter().map(|t| t.as_mut_ptr()).collect();
    let buffers: Vec<*mut C_tensor> = buffers.into_iter().map(|t| t.as_mut_ptr()).collect();
    // SAFETY: the pointers are live tch tensors (at::Tensor*), borrowed mutably for the call.
    let error = unsafe { reslab_sgd_step(params.as_ptr(), buffers.as_ptr(), params.len() as i64, lr, momentum, wd) };
    check(error, "SGD step")
}
