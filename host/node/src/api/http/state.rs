//! What every HTTP handler is given: the node's services, the shared `/v1/stream` feed,
//! and the node's stop signal (endless answers end when it fires).

use tokio_util::sync::CancellationToken;

use super::feed::SnapshotFeed;
use crate::api::Services;

/// The state of the HTTP API.
pub struct AppState {
    /// The node's services, shared with the other transports.
    pub services: Services,
    /// The `/v1/stream` snapshots, shared by every open stream.
    pub feed: SnapshotFeed,
    /// Fires when the node shuts down: event streams end then.
    pub stop: CancellationToken,
}
