//! Streaming bodies into and out of the object store, with limits enforced as bytes arrive.

use std::sync::Arc;

use futures_util::{Stream, StreamExt, TryStreamExt as _};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, WriteMultipart};

use crate::error::{Error, ErrorKind, Result};

/// Parts are sent to the store in chunks of this size (S3's minimum part is 5 MiB).
const CHUNK: usize = 8 * 1024 * 1024;

/// 413 `EntityTooLarge`.
pub(crate) fn too_large() -> Error {
    Error::new(ErrorKind::EntityTooLarge, "The object exceeded the maximum allowed size")
}

/// What [`write`] does with the bytes already received when the body breaks off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnBreak {
    /// Abort: nothing is left at the path (an ordinary upload).
    Discard,
    /// Store what arrived, if anything (a resumable upload's part: the client resumes from
    /// there).
    Keep,
}

/// Streams `body` into `path` and returns its size. Beyond `limit` bytes, or when the body
/// breaks off for its size (an edge's body limit), the upload is aborted and nothing is left
/// at `path`; when the body fails otherwise (the client went away), `on_break` decides.
pub(crate) async fn write<S, E>(
    store: &dyn ObjectStore,
    path: &Path,
    body: &mut S,
    limit: u64,
    on_break: OnBreak,
) -> Result<u64>
where
    S: Stream<Item = std::result::Result<axum::body::Bytes, E>> + Unpin,
    Error: From<E>,
{
    let upload = store.put_multipart(path).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, CHUNK);
    let mut size = 0u64;
    let mut broke = None;
    let copied: Result<()> = async {
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    broke = Some(Error::from(e));
                    break;
                }
            };
            size += chunk.len() as u64;
            if size > limit {
                return Err(too_large());
            }
            // At most two parts in flight: memory stays bounded whatever the object's size.
            writer.wait_for_capacity(2).await?;
            writer.put(chunk);
        }
        Ok(())
    }
    .await;
    let result = match (copied, broke) {
        (Err(e), _) => Err(e),
        // A body cut off for its size (an edge's body limit) is refused whole: it is too large
        // however much of it arrived.
        (Ok(()), Some(e))
            if on_break == OnBreak::Discard || size == 0 || e.kind() == Some(ErrorKind::EntityTooLarge) =>
        {
            Err(e)
        }
        (Ok(()), _) => Ok(size),
    };
    match result {
        Ok(size) => {
            writer.finish().await?;
            Ok(size)
        }
        Err(e) => {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(error = %abort, path = %path, "aborting a failed upload failed");
            }
            Err(e)
        }
    }
}

/// Joins `parts` (in order) into a new blob at `dest`, streaming; the parts stay.
pub(crate) async fn join(store: &Arc<dyn ObjectStore>, parts: &[Path], dest: &Path) -> Result<u64> {
    if let [only] = parts {
        store.copy(only, dest).await?;
        return Ok(store.head(dest).await?.size);
    }
    let reader = Arc::clone(store);
    let mut pieces = futures_util::stream::iter(parts.to_vec())
        .then(move |part| {
            let reader = Arc::clone(&reader);
            async move { reader.get(&part).await.map(|got| got.into_stream()) }
        })
        .try_flatten()
        // Boxed: the combinators' types are too much for the compiler's `Send` proof.
        .boxed();
    write(store.as_ref(), dest, &mut pieces, u64::MAX, OnBreak::Discard).await
}

/// The most of a refused request's body read and dropped before answering; past it the
/// connection is closed instead.
const DRAIN_MAX: u64 = 64 * 1024 * 1024;

/// Reads a request body on a task of its own and hands it on through a small channel. When
/// the reader stops early (the upload was refused), the task reads and drops the rest, up to
/// [`DRAIN_MAX`] bytes or 10 s; await [`Drain::finish`] before answering, so a client that
/// is still sending gets the error rather than a reset connection.
pub(crate) fn pump(body: axum::body::Body) -> (axum::body::Body, Drain) {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::result::Result<axum::body::Bytes, axum::Error>>(2);
    let handle = tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        let mut forwarding = true;
        let mut dropped = 0u64;
        let reading = async {
            while let Some(item) = stream.next().await {
                match item {
                    Ok(chunk) if forwarding => {
                        let len = chunk.len() as u64;
                        if tx.send(Ok(chunk)).await.is_err() {
                            forwarding = false;
                            dropped += len;
                        }
                    }
                    Ok(chunk) => {
                        dropped += chunk.len() as u64;
                        if dropped > DRAIN_MAX {
                            break;
                        }
                    }
                    Err(e) => {
                        if forwarding {
                            let _ = tx.send(Err(e)).await;
                        }
                        break;
                    }
                }
            }
        };
        reading.await;
    });
    let rx = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    (axum::body::Body::from_stream(rx), Drain(handle))
}

/// Runs `handle` on `request`'s parts and [`pump`]ed body. If it fails, the rest of the body
/// is read and dropped (within the pump's bounds) before the error is returned: a client
/// still sending (a large upload refused by a policy, a 6 MiB first TUS chunk) would
/// otherwise see a reset, not the answer.
pub(crate) async fn drained<T, E, F, Fut>(request: axum::extract::Request, handle: F) -> std::result::Result<T, E>
where
    F: FnOnce(http::request::Parts, axum::body::Body) -> Fut,
    Fut: Future<Output = std::result::Result<T, E>>,
{
    let (parts, body) = request.into_parts();
    let (body, drain) = pump(body);
    let result = handle(parts, body).await;
    if result.is_err() {
        drain.finish().await;
    }
    result
}

/// Reads and drops the body of a request refused before its upload began (see [`pump`]).
pub(crate) async fn discard(body: axum::body::Body) {
    let (body, drain) = pump(body);
    drop(body);
    drain.finish().await;
}

/// Cancels a [`guard`]ed body when dropped.
#[derive(Debug)]
pub(crate) struct Cancel(#[allow(dead_code)] tokio::sync::oneshot::Sender<()>);

/// Wraps a request body for work that runs on a task of its own, so that the work still ends
/// as an interrupted upload would: the body breaks off when no byte came for `idle`, or
/// when the returned [`Cancel`] is dropped (the request that started the work was dropped,
/// by the edge's timeout or a client that left).
pub(crate) fn guard(body: axum::body::Body, idle: std::time::Duration) -> (axum::body::Body, Cancel) {
    let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
    let state = Some((body.into_data_stream(), cancelled));
    let guarded = futures_util::stream::unfold(state, move |state| async move {
        let (mut stream, mut cancelled) = state?;
        tokio::select! {
            item = stream.next() => match item {
                Some(Ok(chunk)) => Some((Ok(chunk), Some((stream, cancelled)))),
                Some(Err(e)) => Some((Err(Error::from(e)), None)),
                None => None,
            },
            _ = &mut cancelled => Some((Err(Error::invalid("The request was cancelled")), None)),
            () = tokio::time::sleep(idle) => {
                let message = format!("No data arrived for {} seconds", idle.as_secs_f64());
                Some((Err(Error::new(ErrorKind::RequestTimeout, message)), None))
            }
        }
    });
    (axum::body::Body::from_stream(guarded), Cancel(cancel))
}

/// The task reading a request body (see [`pump`]).
#[derive(Debug)]
pub(crate) struct Drain(tokio::task::JoinHandle<()>);

impl Drain {
    /// Waits (at most 10 s) until the rest of the body has been read and dropped. Drop
    /// everything reading the pumped body first.
    pub(crate) async fn finish(self) {
        let mut handle = self.0;
        if tokio::time::timeout(std::time::Duration::from_secs(10), &mut handle).await.is_err() {
            handle.abort();
        }
    }
}

/// How much of a local file is read at a time when serving it.
const READ: u64 = 256 * 1024;

/// Streams `range` of a local file in large pieces, one read in flight at a time.
pub(crate) fn read_file(
    file: std::fs::File,
    range: std::ops::Range<u64>,
) -> impl futures_util::Stream<Item = std::io::Result<axum::body::Bytes>> + Send + 'static {
    futures_util::stream::try_unfold((Some(file), range.start, range.end, true), |(file, pos, end, first)| async move {
        let Some(mut file) = file.filter(|_| pos < end) else { return Ok(None) };
        let want = (end - pos).min(READ);
        let (file, buf) = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            use std::io::{Read as _, Seek as _, SeekFrom};
            if first {
                file.seek(SeekFrom::Start(pos))?;
            }
            let mut buf = vec![0u8; usize::try_from(want).map_err(std::io::Error::other)?];
            file.read_exact(&mut buf)?;
            Ok((file, buf))
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(Some((axum::body::Bytes::from(buf), (Some(file), pos + want, end, false))))
    })
}

/// Deletes blobs after the rows that pointed at them are gone. Failures are logged: a stray
/// blob is garbage, not data loss.
pub(crate) async fn forget(store: &dyn ObjectStore, paths: Vec<Path>) {
    for path in paths {
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!(error = %e, path = %path, "deleting a replaced blob failed"),
        }
    }
}
