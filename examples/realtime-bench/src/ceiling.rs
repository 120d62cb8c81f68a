//! The ceiling: a hand-written tokio-tungstenite fan-out server. No auth, no RLS, no Phoenix:
//! a map of topic to the senders of its subscribers' queues, and each published frame encoded
//! once and handed to every subscriber's socket.
//!
//! It speaks two text frames: `join <topic>` (answered `ok`) and `pub <topic> <frame>`, whose
//! `<frame>` goes as is to every other subscriber of `<topic>`. Each socket has one task, as
//! in Forge: it reads the socket and writes its queue (bounded, up to 64 frames per flush).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Frames queued for one socket before it is too slow (Forge's bound too).
const QUEUE: usize = 1024;

type Topics = Arc<Mutex<HashMap<String, Vec<(u64, mpsc::Sender<Message>)>>>>;

/// Accepts sockets on `listener` for as long as the process runs.
pub(crate) async fn serve(listener: TcpListener) -> std::io::Result<()> {
    let topics: Topics = Arc::default();
    let mut next = 0u64;
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        next += 1;
        tokio::spawn(connection(tcp, topics.clone(), next));
    }
}

async fn connection(tcp: TcpStream, topics: Topics, id: u64) {
    // The same buffer sizes as Forge's sockets.
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
    let mut joined: Vec<String> = Vec::new();
    loop {
        tokio::select! {
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let text = text.as_str();
                    if let Some(topic) = text.strip_prefix("join ") {
                        let mut map = topics.lock().unwrap_or_else(|e| e.into_inner());
                        map.entry(topic.to_owned()).or_default().push((id, tx.clone()));
                        joined.push(topic.to_owned());
                        let _ = tx.try_send(Message::text("ok"));
                    } else if let Some((topic, frame)) = text.strip_prefix("pub ").and_then(|r| r.split_once(' ')) {
                        let frame = Message::Text(Utf8Bytes::from(frame));
                        let map = topics.lock().unwrap_or_else(|e| e.into_inner());
                        for (subscriber, queue) in map.get(topic).into_iter().flatten() {
                            if *subscriber != id {
                                let _ = queue.try_send(frame.clone());
                            }
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
            Some(first) = rx.recv() => {
                let mut result = sink.feed(first).await;
                let mut batch = 1;
                while result.is_ok() && batch < 64 {
                    let Ok(more) = rx.try_recv() else { break };
                    result = sink.feed(more).await;
                    batch += 1;
                }
                if result.is_err() || sink.flush().await.is_err() {
                    break;
                }
            }
        }
    }
    let mut map = topics.lock().unwrap_or_else(|e| e.into_inner());
    for topic in joined {
        if let Some(list) = map.get_mut(&topic) {
            list.retain(|(s, _)| *s != id);
        }
    }
}
