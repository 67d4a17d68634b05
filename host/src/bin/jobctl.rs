//! `jobctl`: the command-line client of a jobhost server.
//!
//! The server's gRPC API (and with it `jobctl schedule | get | list | cancel | logs`) is not
//! built yet; until then this binary only reports its version, so scripts fail loudly rather
//! than silently.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version" | "-V") => {
            println!("jobctl {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "jobctl: the jobhost gRPC API is not available in this version yet; \
                 for local plugin work use `jobhost plugins list|inspect` and `jobhost run-local`"
            );
            ExitCode::from(2)
        }
    }
}
