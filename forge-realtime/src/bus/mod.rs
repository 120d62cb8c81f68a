//! Fan-out across forge-server processes.
//!
//! A [`Bus`] carries opaque envelopes between the nodes that serve the same projects:
//! broadcasts, presence and decoded database changes. forge-realtime encodes and decodes the
//! payloads itself; a bus only moves bytes, in order per publisher, each envelope once to
//! each subscriber.
//!
//! Three implementations:
//!
//! - [`LocalBus`]: in-process, over a broadcast channel; the default for a single node.
//! - [`PostgresBus`]: LISTEN/NOTIFY on one channel of a database all nodes reach, with large
//!   envelopes spilled into a table.
//! - `NatsBus` (with the `nats` feature): core NATS on one subject per deployment.
//!
//! The buses that leave the process share one binary framing of an envelope (`frame.rs`).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

mod frame;
mod local;
#[cfg(feature = "nats")]
mod nats;
mod postgres;

pub use local::LocalBus;
#[cfg(feature = "nats")]
pub use nats::NatsBus;
pub use postgres::{LISTENER_APPLICATION_NAME, PUBLISHER_APPLICATION_NAME, PostgresBus, PostgresBusConfig};

/// Which node published an envelope.
pub type NodeId = uuid::Uuid;

/// One message on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The node that published it.
    pub origin: NodeId,
    /// The project it belongs to (its ref).
    pub project: Arc<str>,
    /// forge-realtime's encoded message.
    pub payload: Bytes,
}

/// Why a bus could not publish.
#[derive(Debug, thiserror::Error)]
#[error("realtime bus: {0}")]
pub struct BusError(pub String);

/// Carries envelopes between nodes.
///
/// [`Bus::subscribe`] yields every envelope published after it was called, by any node,
/// this one included, each exactly once and in publish order per origin. An implementation
/// reconnects by itself; envelopes published while it is disconnected may be lost (presence
/// heals through its periodic state, and database changes are re-sent by the capture, which
/// confirms a position only after publishing).
pub trait Bus: Send + Sync + std::fmt::Debug + 'static {
    /// Publishes `envelope` to every node.
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), BusError>>;

    /// Every envelope published from now on.
    fn subscribe(&self) -> BoxFuture<'_, Result<BoxStream<'static, Envelope>, BusError>>;
}
