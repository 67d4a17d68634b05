//! `jobhost serve`: a node ([`jobhost::node::Node`]) until SIGINT or SIGTERM; SIGHUP reads
//! the TLS files and token files again.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use jobhost::api::auth::Gate;
use jobhost::node::Node;
use jobhost_config::Config;

/// Serves a node as `config` says until SIGINT or SIGTERM, then drains it.
pub(crate) async fn serve(config: Config, dev: bool) -> Result<ExitCode> {
    // Installed first: a signal while the node is still starting is neither lost nor fatal.
    let mut signal = ShutdownSignal::install()?;
    let node = Node::start(config, dev).await?;
    reload_on_hangup(node.services().gate.clone())?;
    node.run_until(signal.received()).await?;
    Ok(ExitCode::SUCCESS)
}

/// SIGINT/SIGTERM, caught from the moment it is created (so a signal that arrives while the
/// node is still starting is not lost, nor fatal).
pub(crate) struct ShutdownSignal {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    pub(crate) fn install() -> Result<ShutdownSignal> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(ShutdownSignal {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    pub(crate) async fn received(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// On SIGHUP, reads the TLS files and the `file:` tokens again at once (the TLS files are
/// also checked every `tls.reload_interval_ms`); what cannot be used is logged and the ones
/// in use are kept.
pub(crate) fn reload_on_hangup(gate: Arc<Gate>) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            if let Some(tls) = gate.tls() {
                match tls.reload_if_changed() {
                    Ok(true) => {
                        tracing::info!("SIGHUP: TLS certificate, key or client CA reloaded")
                    }
                    Ok(false) => tracing::info!("SIGHUP: TLS files unchanged"),
                    Err(e) => tracing::error!(
                        "SIGHUP: TLS files cannot be used, keeping the ones in use: {e}"
                    ),
                }
            }
            match gate.reload_tokens() {
                Ok(count) => tracing::info!(tokens = count, "SIGHUP: auth tokens read again"),
                Err(e) => tracing::error!(
                    "SIGHUP: auth tokens cannot be read, keeping the ones in use: {e}"
                ),
            }
        }
    });
    Ok(())
}
