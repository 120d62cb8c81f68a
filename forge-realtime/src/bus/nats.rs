//! The NATS bus: core NATS publish/subscribe on one subject per deployment.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, StreamExt};

use super::{Bus, BusError, Envelope, frame};

/// How long [`Bus::subscribe`] waits for the server to confirm a subscription.
const SUBSCRIBE_CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A [`Bus`] over core NATS (no JetStream), for nodes that share a NATS server or cluster.
///
/// Every envelope is one message on the subject given to [`NatsBus::connect`]
/// ([`NatsBus::DEFAULT_SUBJECT`] by default), without headers. Its payload is the frame
/// [`PostgresBus`](super::PostgresBus) uses too: a version byte (1), the origin's 16 bytes,
/// the project's length (2 bytes, big endian), the project, the envelope's payload. NATS
/// delivers one publisher's messages to a subscriber in order, so envelopes of one origin
/// arrive in publish order. Each [`Bus::subscribe`] is a NATS subscription of its own, and
/// returns once the server has it (after a round trip through a fresh inbox; at most 5 s).
///
/// An envelope's frame (19 bytes, the project and the payload) must fit the server's
/// `max_payload` (1 MiB by default); a larger one fails to publish. The client reconnects by
/// itself (and re-subscribes), logging each disconnect and reconnect; messages published
/// meanwhile are lost, as the [`Bus`] contract allows. A subscriber that falls 65,536
/// messages behind loses messages, and the client logs a slow-consumer warning.
///
/// Clones share the connection.
#[derive(Debug, Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    subject: async_nats::Subject,
}

impl NatsBus {
    /// The subject unless configured otherwise.
    pub const DEFAULT_SUBJECT: &str = "forge.realtime";

    /// Connects to the NATS server(s) at `url` (e.g. `nats://127.0.0.1:4222`; several
    /// comma-separated) and exchanges envelopes on the subject `subject_prefix`, which
    /// separates deployments that share a server (e.g. `forge.realtime` or
    /// `acme.prod.realtime`: dot-separated tokens, no wildcards or whitespace).
    #[tracing::instrument(skip_all, fields(subject = %subject_prefix))]
    pub async fn connect(url: &str, subject_prefix: &str) -> Result<Self, BusError> {
        let options = async_nats::ConnectOptions::new().name("forge-realtime-bus").event_callback(log_event);
        let client = options.connect(url).await.map_err(|e| BusError(format!("nats: cannot connect: {e}")))?;
        Self::from_client(client, subject_prefix)
    }

    /// Uses an already connected `client` (for credentials or TLS set up through
    /// [`async_nats::ConnectOptions`]), on the subject `subject_prefix`.
    pub fn from_client(client: async_nats::Client, subject_prefix: &str) -> Result<Self, BusError> {
        check_subject(subject_prefix)?;
        Ok(Self { client, subject: async_nats::Subject::from(subject_prefix) })
    }

    /// The subject envelopes travel on.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    async fn publish_envelope(&self, envelope: Envelope) -> Result<(), BusError> {
        let frame = frame::encode(&envelope).map_err(|e| BusError(e.to_string()))?;
        self.client
            .publish(self.subject.clone(), frame)
            .await
            .map_err(|e| BusError(format!("nats: cannot publish: {e}")))
    }

    async fn subscribe_stream(&self) -> Result<BoxStream<'static, Envelope>, BusError> {
        let subscriber = self
            .client
            .subscribe(self.subject.clone())
            .await
            .map_err(|e| BusError(format!("nats: cannot subscribe: {e}")))?;
        match tokio::time::timeout(SUBSCRIBE_CONFIRM_TIMEOUT, self.round_trip()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            // Disconnected: the client subscribes when it is back.
            Err(_) => tracing::warn!("the NATS server has not confirmed the realtime bus subscription yet"),
        }
        let envelopes = subscriber.filter_map(|message| {
            let envelope = match frame::decode(message.payload) {
                Ok(envelope) => Some(envelope),
                Err(e) => {
                    tracing::warn!(error = %e, "realtime bus frame dropped");
                    None
                }
            };
            std::future::ready(envelope)
        });
        Ok(envelopes.boxed())
    }
}

impl NatsBus {
    /// Returns once the server has processed everything this connection sent before: it
    /// handles one connection's messages in order, so when a message to a fresh inbox comes
    /// back, a subscription sent before it is in place. (A flush only writes the socket.)
    async fn round_trip(&self) -> Result<(), BusError> {
        let inbox = self.client.new_inbox();
        let mut echo =
            self.client.subscribe(inbox.clone()).await.map_err(|e| BusError(format!("nats: cannot subscribe: {e}")))?;
        self.client.publish(inbox, Bytes::new()).await.map_err(|e| BusError(format!("nats: cannot subscribe: {e}")))?;
        match echo.next().await {
            Some(_) => Ok(()),
            None => Err(BusError("nats: the connection closed while subscribing".to_owned())),
        }
    }
}

impl Bus for NatsBus {
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(self.publish_envelope(envelope))
    }

    fn subscribe(&self) -> BoxFuture<'_, Result<BoxStream<'static, Envelope>, BusError>> {
        Box::pin(self.subscribe_stream())
    }
}

async fn log_event(event: async_nats::Event) {
    match event {
        async_nats::Event::Connected => tracing::info!("realtime bus connected to NATS"),
        async_nats::Event::Disconnected => tracing::warn!("realtime bus disconnected from NATS; reconnecting"),
        async_nats::Event::SlowConsumer(sid) => {
            tracing::warn!(sid, "realtime bus subscriber fell behind; NATS messages lost");
        }
        other => tracing::warn!(event = %other, "realtime bus NATS event"),
    }
}

/// Checks that `subject` is a literal NATS subject: dot-separated non-empty tokens, without
/// whitespace or wildcards.
fn check_subject(subject: &str) -> Result<(), BusError> {
    let valid = subject.split('.').all(|token| {
        !token.is_empty() && token != "*" && token != ">" && !token.chars().any(|c| c.is_whitespace() || c == '\0')
    });
    if valid {
        Ok(())
    } else {
        Err(BusError(format!("nats: {subject:?} is not a subject (dot-separated tokens, no wildcards or whitespace)")))
    }
}

#[cfg(test)]
mod tests {
    use super::check_subject;

    #[test]
    fn accepts_literal_subjects_only() {
        for good in ["forge.realtime", "acme.prod.realtime", "x", "a-b_c.d1"] {
            assert!(check_subject(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "forge.", ".forge", "forge..realtime", "forge.*", "forge.>", "for ge", "forge.\trt"] {
            assert!(check_subject(bad).is_err(), "{bad:?}");
        }
    }
}
