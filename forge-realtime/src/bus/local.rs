//! The in-process bus: one node, no network.

use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::sync::broadcast;

use super::{Bus, BusError, Envelope};

/// A [`Bus`] inside one process, over a [`tokio::sync::broadcast`] channel: the default
/// for a single node.
///
/// Clones share the channel. Every subscriber holds a place in a ring of
/// [`LocalBus::DEFAULT_CAPACITY`] envelopes (or the capacity given to
/// [`LocalBus::with_capacity`]); a subscriber that falls that far behind loses the oldest
/// ones, logs a warning with how many it skipped, and goes on with the oldest it still has.
/// Publishing never waits for subscribers, and succeeds with none.
///
/// ```
/// use forge_realtime::bus::{Bus, Envelope, LocalBus, NodeId};
/// use futures_util::StreamExt;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let bus = LocalBus::new();
/// let mut envelopes = bus.subscribe().await?;
/// let envelope = Envelope { origin: NodeId::new_v4(), project: "my-project".into(), payload: "hi".into() };
/// bus.publish(envelope.clone()).await?;
/// assert_eq!(envelopes.next().await, Some(envelope));
/// # Ok::<_, forge_realtime::bus::BusError>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct LocalBus {
    sender: broadcast::Sender<Envelope>,
}

impl LocalBus {
    /// How many envelopes a subscriber may fall behind before it loses some.
    pub const DEFAULT_CAPACITY: usize = 16_384;

    /// A bus with [`LocalBus::DEFAULT_CAPACITY`].
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }

    /// A bus whose subscribers may fall `capacity` envelopes behind (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        Self { sender: broadcast::channel(capacity.max(1)).0 }
    }

    /// Hands `envelope` to the current subscribers.
    pub(crate) fn send(&self, envelope: Envelope) {
        // An error only means that nobody is subscribed.
        let _ = self.sender.send(envelope);
    }

    /// The stream of every envelope sent from now on.
    pub(crate) fn stream(&self) -> BoxStream<'static, Envelope> {
        subscriber_stream(self.sender.subscribe())
    }
}

impl Default for LocalBus {
    fn default() -> Self {
        Self::new()
    }
}

impl Bus for LocalBus {
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), BusError>> {
        self.send(envelope);
        Box::pin(std::future::ready(Ok(())))
    }

    fn subscribe(&self) -> BoxFuture<'_, Result<BoxStream<'static, Envelope>, BusError>> {
        let stream = self.stream();
        Box::pin(std::future::ready(Ok(stream)))
    }
}

/// `receiver` as a stream that logs what it skips when it lags, and ends when every sender
/// is gone.
fn subscriber_stream(receiver: broadcast::Receiver<Envelope>) -> BoxStream<'static, Envelope> {
    stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(envelope) => return Some((envelope, receiver)),
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::warn!(skipped, "realtime bus subscriber fell behind; envelopes lost");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .boxed()
}
