//! Bindings to `csrc/reslab_native.cpp` and `csrc/reslab_fused.cpp`: libtorch operations that
//! tch does not expose, built against the same libtorch (build.rs): the optimizer's flat update
//! (train), autocast (the runtime), oneDNN's fused inference convolution and the fused training
//! step's BN + (addition +) ReLU (model).

use anyhow::{bail, Result};
use std::ffi::{c_char, c_int, CStr};
use tch::{Device, Tensor};
use torch_sys::C_tensor;

extern "C" {
    fn reslab_flatten_parameters(
        params: *const *mut C_tensor,
        count: i64,
        flat_params: *mut *mut C_tensor,
        flat_grads: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn reslab_sgd_update(
        param: *mut C_tensor,
        grad: *mut C_tensor,
        buffer: *mut C_tensor,
        lr: f64,
        momentum: f64,
        weight_decay: f64,
    ) -> *mut c_char;
    fn reslab_autocast_enter(device: c_int, was_enabled: *mut c_int, previous_dtype: *mut c_int) -> *mut c_char;
    fn reslab_autocast_exit(device: c_int, was_enabled: c_int, previous_dtype: c_int) -> *mut c_char;
    fn reslab_conv_fused(
        x: *mut C_tensor,
        weight: *mut C_tensor,
        bias: *mut C_tensor,
        stride: i64,
        padding: i64,
        other: *mut C_tensor,
        relu: c_int,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn reslab_bn_relu(
        x: *mut C_tensor,
        identity: *mut C_tensor,
        weight: *mut C_tensor,
        bias: *mut C_tensor,
        running_mean: *mut C_tensor,
        running_var: *mut C_tensor,
        momentum: f64,
        eps: f64,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn reslab_profile_start(path: *const c_char) -> *mut c_char;
    fn reslab_profile_stop() -> *mut c_char;
    fn reslab_free_error(message: *mut c_char);
}

/// The error a native call returned, if any (and frees it).
pub(crate) fn check(error: *mut c_char, what: &str) -> Result<()> {
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null result is a NUL-terminated string malloc'ed by the shim, freed once here.
    let message = unsafe { CStr::from_ptr(error) }.to_string_lossy().into_owned();
    unsafe { reslab_free_error(error) };
    bail!("{what}: {}", message.lines().next().unwrap_or_default())
}

/// Makes each of `params` a view into one flat buffer (keeping its shape and strides) with a
/// gradient that is a view into a second one; returns (flat values, flat gradients).
pub fn flatten_parameters(params: &mut [Tensor]) -> Result<(Tensor, Tensor)> {
    let pointers: Vec<*mut C_tensor> = params.iter_mut().map(|t| t.as_mut_ptr()).collect();
    let (mut values, mut grads) = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: the pointers are live tch tensors (at::Tensor*), borrowed mutably for the call; on
    // success the shim returns two new at::Tensor* that tch then owns.
    let error = unsafe { reslab_flatten_parameters(pointers.as_ptr(), pointers.len() as i64, &mut values, &mut grads) };
    check(error, "flattening the parameters")?;
    Ok(unsafe { (Tensor::from_ptr(values), Tensor::from_ptr(grads)) })
}

/// torch.optim.SGD's update (dampening 0, no Nesterov) of `param` with `grad` and its momentum
/// `buffer` (same shapes).
pub fn sgd_update(
    param: &mut Tensor,
    grad: &mut Tensor,
    buffer: &mut Tensor,
    lr: f64,
    momentum: f64,
    wd: f64,
) -> Result<()> {
    // SAFETY: live tch tensors, borrowed mutably for the call.
    let error =
        unsafe { reslab_sgd_update(param.as_mut_ptr(), grad.as_mut_ptr(), buffer.as_mut_ptr(), lr, momentum, wd) };
    check(error, "SGD step")
}

/// oneDNN's fused inference convolution: `conv(x, weight) + bias`, plus `other` if given, then
/// ReLU if `relu`, in one pass (dense fp32 CPU tensors, no gradients).
pub fn conv_fused(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    stride: i64,
    padding: i64,
    other: Option<&Tensor>,
    relu: bool,
) -> Result<Tensor> {
    // The shim takes mutable pointers but only reads these tensors: shallow clones share them.
    let (mut x, mut weight, mut bias) = (x.shallow_clone(), weight.shallow_clone(), bias.shallow_clone());
    let mut other = other.map(Tensor::shallow_clone);
    let other_ptr = other.as_mut().map_or(std::ptr::null_mut(), |t| t.as_mut_ptr());
    let mut out = std::ptr::null_mut();
    // SAFETY: live tch tensors for the call; on success the shim returns a new at::Tensor* that
    // tch then owns.
    let error = unsafe {
        reslab_conv_fused(
            x.as_mut_ptr(),
            weight.as_mut_ptr(),
            bias.as_mut_ptr(),
            stride,
            padding,
            other_ptr,
            relu as c_int,
            &mut out,
        )
    };
    check(error, "fused convolution")?;
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// The fused training step's `relu(batch_norm(x) + identity)` (no addition without `identity`)
/// with batch statistics, as one autograd operation with its own backward; the running
/// statistics are updated in place, as PyTorch's BN does with `momentum`. 4-d fp32 or bf16 CPU
/// tensors (the output channels-last, in the input's type); fp32 BN parameters.
#[allow(clippy::too_many_arguments)]
pub fn bn_relu(
    x: &Tensor,
    identity: Option<&Tensor>,
    weight: &Tensor,
    bias: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    momentum: f64,
    eps: f64,
) -> Result<Tensor> {
    // The shim reads x, identity, weight and bias, and writes the running statistics in place:
    // shallow clones share their storage.
    let mut x = x.shallow_clone();
    let mut identity = identity.map(Tensor::shallow_clone);
    let identity_ptr = identity.as_mut().map_or(std::ptr::null_mut(), |t| t.as_mut_ptr());
    let (mut weight, mut bias) = (weight.shallow_clone(), bias.shallow_clone());
    let (mut running_mean, mut running_var) = (running_mean.shallow_clone(), running_var.shallow_clone());
    let mut out = std::ptr::null_mut();
    // SAFETY: live tch tensors for the call; on success the shim returns a new at::Tensor* that
    // tch then owns.
    let error = unsafe {
        reslab_bn_relu(
            x.as_mut_ptr(),
            identity_ptr,
            weight.as_mut_ptr(),
            bias.as_mut_ptr(),
            running_mean.as_mut_ptr(),
            running_var.as_mut_ptr(),
            momentum,
            eps,
            &mut out,
        )
    };
    check(error, "fused batch norm")?;
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// libtorch's profiler while the guard lives: every op this thread runs (and autograd runs for
/// it) is recorded, and written to the file as a Chrome trace (JSON) when the guard is dropped.
#[must_use = "the profile is written when the guard is dropped"]
pub struct Profile {
    _this_thread: std::marker::PhantomData<*const ()>,
}

impl Profile {
    /// Starts recording, to be written to `path`.
    pub fn start(path: &std::path::Path) -> Result<Profile> {
        let text = std::ffi::CString::new(path.display().to_string())?;
        // SAFETY: a NUL-terminated string the shim copies.
        check(unsafe { reslab_profile_start(text.as_ptr()) }, "starting libtorch's profiler")?;
        Ok(Profile { _this_thread: std::marker::PhantomData })
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        // SAFETY: no arguments; writes the trace and stops the profiler.
        if let Err(e) = check(unsafe { reslab_profile_stop() }, "writing libtorch's profile") {
            crate::eprint_line!("warning: {e}");
        }
    }
}

/// libtorch's autocast to bf16 on `device`'s type while the guard lives. Autocast is a state of
/// the thread, so the guard cannot be sent to another one.
#[must_use = "autocast ends when the guard is dropped"]
pub struct Autocast {
    device: c_int,
    was_enabled: c_int,
    previous_dtype: c_int,
    _this_thread: std::marker::PhantomData<*const ()>,
}

impl Autocast {
    pub fn bf16(device: Device) -> Result<Autocast> {
        let device = if device.is_cuda() { 1 } else { 0 };
        let (mut was_enabled, mut previous_dtype) = (0, 0);
        // SAFETY: plain values; the shim only touches libtorch's thread-local autocast state.
        check(unsafe { reslab_autocast_enter(device, &mut was_enabled, &mut previous_dtype) }, "entering autocast")?;
        Ok(Autocast { device, was_enabled, previous_dtype, _this_thread: std::marker::PhantomData })
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        // SAFETY: as in `bf16`; leaving cannot fail but for a libtorch bug, reported on stderr.
        let error = unsafe { reslab_autocast_exit(self.device, self.was_enabled, self.previous_dtype) };
        if let Err(e) = check(error, "leaving autocast") {
            crate::eprint_line!("warning: {e}");
        }
    }
}
