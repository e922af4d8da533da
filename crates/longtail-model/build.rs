//! With the `cuda` feature: compile kernels/*.cu ahead of time into one fatbin (SASS for sm_80
//! and sm_90, PTX for newer GPUs) that the binary embeds. Without it: nothing (the CPU build
//! needs no CUDA toolkit).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=NVCC");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    // all.cu includes every other file of kernels/.
    println!("cargo:rerun-if-changed=kernels");
    let kernels = ["kernels/all.cu"];
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("longtail_kernels.fatbin");
    let nvcc = std::env::var("NVCC").unwrap_or_else(|_| "nvcc".into());
    let status = Command::new(&nvcc)
        .args(["--fatbin", "-O3", "-std=c++17"])
        .args(["-gencode", "arch=compute_80,code=sm_80"])
        .args(["-gencode", "arch=compute_90,code=sm_90"])
        .args(["-gencode", "arch=compute_90,code=compute_90"])
        .arg("-o")
        .arg(&out)
        .args(kernels)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {nvcc} ({e}): the cuda feature compiles its kernels ahead of time; \
                 `make build-cuda` puts a CUDA toolkit from PyPI on PATH"
            )
        });
    assert!(status.success(), "{nvcc} failed on {kernels:?} ({status})");
}
