#!/usr/bin/env bash
# Sets up everything reslab needs and builds it; fast when it is already there.
#  - libtorch from PyPI (torch==2.13.0, the version tch 0.26 expects) in the project-local .venv,
#    with torchvision (interop tests), NumPy and safetensors (the PyTorch side of the equality
#    tests) and tensorboard (reads reslab's event files back in the tests);
#  - a release build that finds libtorch at run time through an rpath (see build.rs).
# Source it (`. scripts/setup.sh`) to also get the build environment in your shell.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3}"

have_torch() {
  "$venv/bin/python" - <<'PY' 2>/dev/null
import torch, torchvision, safetensors, numpy, tensorboard
assert torch.__version__.split("+")[0] == "2.13.0", torch.__version__
PY
}

if ! have_torch; then
  command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (https://rustup.rs) first" >&2; exit 1; }
  command -v "$python" >/dev/null || { echo "setup: $python not found; install Python 3 first" >&2; exit 1; }
  if ! "$python" -m venv --help >/dev/null 2>&1 || ! "$python" -c "import ensurepip" 2>/dev/null; then
    echo "setup: installing python3-venv (Debian/Ubuntu)" >&2
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq python3-venv
  fi
  echo "setup: installing torch==2.13.0 into $venv (about 4.7 GB, once)" >&2
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check torch==2.13.0 torchvision==0.28.0 numpy safetensors tensorboard
  have_torch || { echo "setup: torch 2.13.0 did not install into $venv" >&2; exit 1; }
fi

export VIRTUAL_ENV="$venv"
export PATH="$venv/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
cd "$root"
cargo build --release --quiet
