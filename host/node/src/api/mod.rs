//! The APIs a node serves. `grpc`: the scheduler API, health and reflection; `http`:
//! the REST mirror, dashboard, inbound webhook triggers and health; `submit`: job
//! submission shared by both; `tls` and `auth`: who may call them; `ratelimit`: how often;
//! `places`: how many streams and connections one client may hold at once.

pub mod auth;
pub mod grpc;
pub mod http;
pub mod places;
pub mod ratelimit;
pub mod submit;
pub mod tls;
