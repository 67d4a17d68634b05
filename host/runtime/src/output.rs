//! A plugin's stdout and stderr, turned into job log lines.
//!
//! Output is split into lines as it arrives; each complete line goes through the job's log
//! budget, so a plugin printing without end costs the host a bounded amount of memory. A
//! partial line is flushed when it grows past `MAX_LINE` or when the stream is dropped.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use super::context::CurrentCall;
use super::job::LogLevel;

/// Longest line kept whole; longer output is split.
const MAX_LINE: usize = 8 * 1024;

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// The job-log-backed stdout or stderr of a plugin instance.
#[derive(Clone)]
pub struct GuestOutput {
    stream: Stream,
    context: CurrentCall,
    pending: Arc<Mutex<Vec<u8>>>,
}

impl GuestOutput {
    /// Stdout: lines are logged at `info` into the log of the call `context` serves.
    pub fn stdout(context: CurrentCall) -> Self {
        Self::new(Stream::Stdout, context)
    }

    /// Stderr: lines are logged at `warn` and kept for panic reports.
    pub fn stderr(context: CurrentCall) -> Self {
        Self::new(Stream::Stderr, context)
    }

    fn new(stream: Stream, context: CurrentCall) -> Self {
        GuestOutput {
            stream,
            context,
            pending: Arc::default(),
        }
    }

    /// Lines waiting to be delivered (see [`crate::JobEvents::backlog`]).
    pub fn backlog(&self) -> usize {
        self.context.get().backlog()
    }

    /// Appends raw output; complete lines go to the log.
    pub fn write_bytes(&self, bytes: &[u8]) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.extend_from_slice(bytes);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            self.emit(&line[..line.len() - 1]);
        }
        if pending.len() > MAX_LINE {
            let line: Vec<u8> = std::mem::take(&mut *pending);
            self.emit(&line);
        }
    }

    /// Logs what is left of an unterminated line (at the end of a call).
    pub(crate) fn flush_pending(&self) {
        let line = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if !line.is_empty() {
            self.emit(&line);
        }
    }

    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        let context = self.context.get();
        match self.stream {
            Stream::Stdout => {
                context.log(LogLevel::Info, line);
            }
            Stream::Stderr => context.stderr_line(line),
        }
    }
}

impl Drop for GuestOutput {
    fn drop(&mut self) {
        // The last handle flushes what is left of an unterminated line.
        if Arc::strong_count(&self.pending) == 1 {
            self.flush_pending();
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
