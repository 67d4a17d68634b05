//! WASI p2 with nothing opened: clocks, random, and the CLI/IO/filesystem interfaces that
//! every Rust std component imports even when it never uses them.
//!
//! Always granted. No preopened directories, empty environment and arguments; stdout and
//! stderr go to the job log (see [`super::super::output`]). Sockets are linked here too, because
//! WASI links as one unit, but they stay unusable unless [`super::network`] is granted.

use wasmtime::component::Linker;

use super::CallState;
use super::Capability;

/// The WASI base capability.
pub struct WasiBase;

impl Capability for WasiBase {
    fn name(&self) -> &'static str {
        "wasi"
    }
    fn interfaces(&self) -> &'static [&'static str] {
        &[
            "wasi:cli/",
            "wasi:io/",
            "wasi:clocks/",
            "wasi:random/",
            "wasi:filesystem/",
        ]
    }
    fn always_granted(&self) -> bool {
        true
    }
    fn link(&self, linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
        wasmtime_wasi::p2::add_to_linker_async(linker)
    }
}
