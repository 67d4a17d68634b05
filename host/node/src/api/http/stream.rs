//! `GET /v1/stream`: the live feed dashboards follow, one event a second from the node's
//! shared snapshot producer.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};

use super::state::AppState;

/// `GET /v1/stream`: Server-Sent Events for dashboards: a `snapshot` event
/// ([`super::json::Snapshot`]) every second, or an `error` event while Redis is unreachable.
#[utoipa::path(get, path = "/v1/stream", responses((status = 200, description = "text/event-stream of `snapshot` events (Snapshot)", content_type = "text/event-stream")))]
pub async fn stream(
    State(state): State<Arc<AppState>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let latest = state.feed.subscribe(&state.services);
    let stop = state.stop.clone().cancelled_owned();
    // The snapshot in hand first (if any), then each new one.
    let events = futures::stream::unfold((latest, true), |(mut latest, first)| async move {
        loop {
            if !(first && latest.borrow().is_some()) {
                latest.changed().await.ok()?;
            }
            let tick = latest.borrow_and_update().clone();
            if let Some(tick) = tick {
                let event = Event::default().event(tick.name).data(tick.json.as_str());
                return Some((Ok(event), (latest, false)));
            }
        }
    })
    .take_until(stop);
    Sse::new(events).keep_alive(KeepAlive::default())
}
