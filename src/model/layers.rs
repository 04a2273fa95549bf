//! Small layer helpers with the paper's initialisation stated in one place.
//!
//! tch's defaults differ from the paper: its conv weights are Kaiming *uniform* fan-in and its
//! BatchNorm weights are uniform(0, 1). Here convolutions get He (MSRA) normal initialisation
//! (fan-out, as torchvision and the PyTorch CIFAR reproductions use), BatchNorm weight 1 and bias 0,
//! and the final fully-connected layer PyTorch's default uniform(+-1/sqrt(fan_in)).

use tch::nn::{self, init::FanInOut, init::NonLinearity, init::NormalOrUniform, Init};

/// He et al. (2015, "Delving deep into rectifiers") normal initialisation.
const HE_NORMAL: Init =
    Init::Kaiming { dist: NormalOrUniform::Normal, fan: FanInOut::FanOut, non_linearity: NonLinearity::ReLU };

/// A bias-free convolution with "same" padding for odd kernels.
pub fn conv(p: nn::Path, c_in: i64, c_out: i64, kernel: i64, stride: i64) -> nn::Conv2D {
    let config = nn::ConvConfig { stride, padding: kernel / 2, bias: false, ws_init: HE_NORMAL, ..Default::default() };
    nn::conv2d(p, c_in, c_out, kernel, config)
}

pub fn conv3x3(p: nn::Path, c_in: i64, c_out: i64, stride: i64) -> nn::Conv2D {
    conv(p, c_in, c_out, 3, stride)
}

pub fn conv1x1(p: nn::Path, c_in: i64, c_out: i64, stride: i64) -> nn::Conv2D {
    conv(p, c_in, c_out, 1, stride)
}

/// BatchNorm with weight 1, bias 0, PyTorch's momentum 0.1 and eps 1e-5.
pub fn batch_norm(p: nn::Path, channels: i64) -> nn::BatchNorm {
    let config = nn::BatchNormConfig {
        ws_init: Init::Const(1.0),
        bs_init: Init::Const(0.0),
        momentum: 0.1,
        eps: 1e-5,
        ..Default::default()
    };
    nn::batch_norm2d(p, channels, config)
}

/// The classifier: PyTorch's default initialisation (uniform with bound 1/sqrt(fan_in)).
pub fn linear(p: nn::Path, d_in: i64, d_out: i64) -> nn::Linear {
    let bound = 1.0 / (d_in as f64).sqrt();
    let config = nn::LinearConfig {
        ws_init: Init::Uniform { lo: -bound, up: bound },
        bs_init: Some(Init::Uniform { lo: -bound, up: bound }),
        bias: true,
    };
    nn::linear(p, d_in, d_out, config)
}

/// Multiply-accumulates of a `kernel`x`kernel` convolution producing an `h`x`w` output.
pub fn conv_macs(c_in: i64, c_out: i64, kernel: i64, h_out: i64, w_out: i64) -> u64 {
    (kernel * kernel * c_in * c_out * h_out * w_out) as u64
}
