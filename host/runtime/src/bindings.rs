#![allow(missing_docs)] // generated code mirrors the documented WIT in wit/

//! Host-side bindings of the `jobhost:plugin` WIT world (generated from `wit/`).

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "job-plugin-full",
    imports: {
        "jobhost:plugin/host.sleep": async,
        "jobhost:plugin/process.run": async,
        "jobhost:plugin/kv.get": async,
        "jobhost:plugin/kv.set": async,
        "jobhost:plugin/kv.delete": async,
        "jobhost:plugin/kv.list-keys": async,
        default: trappable,
    },
    exports: { default: async },
});

/// The WIT package this host serves; plugins built against any 0.1.x load.
pub const WIT_PACKAGE: &str = "jobhost:plugin";
/// The exact version of `wit/plugin.wit` the host is built from.
pub const WIT_PACKAGE_VERSION: &str = "0.1.2";

/// The bindings of the world the host links (`job-plugin-full`: every interface it offers);
/// a component of any world of the package matches it, as they export the same functions.
pub type JobPlugin = JobPluginFull;
/// A component checked against [`JobPlugin`], ready to instantiate.
pub type JobPluginPre<T> = JobPluginFullPre<T>;
/// Major.minor of the served contract: for 0.x packages, minor bumps are breaking.
pub const WIT_VERSION: (u64, u64) = (0, 1);
