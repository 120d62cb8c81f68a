//! [`CountingStore`]: an [`ObjectStore`] wrapper that counts the bytes and objects going
//! through it, as an example of plugging your own store into forge-storage.
//!
//! forge-storage keeps object bytes in any `Arc<dyn ObjectStore>`, so anything that can be
//! written as an `ObjectStore` (a wrapper that encrypts, meters, mirrors or throttles) plugs
//! in with `Storage::builder().store(..)`. Keep your own `Arc` of the wrapper to read its
//! counters; forge-storage holds a clone of it:
//!
//! ```
//! use std::sync::Arc;
//!
//! use example_storage_custom_store::CountingStore;
//! use object_store::memory::InMemory;
//! use object_store::path::Path;
//! use object_store::{ObjectStore, ObjectStoreExt as _};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let store = Arc::new(CountingStore::new(InMemory::new()));
//! // let storage = forge_storage::Storage::builder().store(store.clone()).build()?;
//! store.put(&Path::from("a.txt"), "hello".into()).await?;
//! let bytes = store.get(&Path::from("a.txt")).await?.bytes().await?;
//! assert_eq!(&bytes[..], b"hello");
//! let counts = store.counts();
//! assert_eq!((counts.bytes_written, counts.bytes_read, counts.objects_put), (5, 5, 1));
//! # Ok::<_, object_store::Error>(())
//! # }).unwrap();
//! ```
//!
//! ## What is counted, and when
//!
//! - **Bytes written**: the payload of each successful [`ObjectStore::put_opts`], and of each
//!   successful [`MultipartUpload::put_part`] of an upload started with
//!   [`ObjectStore::put_multipart_opts`] (forge-storage streams its uploads that way). A part
//!   counts once the store has it, so the parts of an upload that is later aborted count too:
//!   they were written, then thrown away.
//! - **Objects put**: each successful `put_opts` and each multipart upload that completes.
//! - **Bytes read**: the bytes of a [`GetResult`] as the caller consumes them, chunk by chunk.
//!   Nothing is buffered; a download the client abandons half-way counts half its bytes.
//! - **Objects deleted**: each location [`ObjectStore::delete_stream`] reports deleted.
//!   Whether deleting a missing object is an error depends on the inner store (S3 and the
//!   in-memory store say it succeeded, a local filesystem says `NotFound`).
//!
//! ## The trait, as of object_store 0.14
//!
//! [`ObjectStore`] is a small, object-safe trait: `put_opts`, `put_multipart_opts`,
//! `get_opts`, `delete_stream`, `list`, `list_with_delimiter` and `copy_opts` are required;
//! `put`, `get`, `get_range`, `head`, `delete`, `copy` and friends live in
//! [`ObjectStoreExt`](object_store::ObjectStoreExt), implemented for every store on top of the
//! required methods, so a wrapper sees those calls too. Of the provided methods,
//! `list_with_offset` and `rename_opts` are passed to the inner store, which may do them better
//! (a filesystem renames in place); `get_ranges` keeps its default, which reads through
//! `get_opts` and so is counted.
//!
//! The trait is declared with `#[async_trait]`; this crate does not depend on that macro and
//! writes out what it would generate: each `async fn` becomes a `fn` returning a boxed `Send`
//! future that may borrow every reference argument.
//!
//! ## A cost to know about
//!
//! A local filesystem answers `get_opts` with an open file, which forge-storage reads in large
//! pieces. To see the bytes, the wrapper turns the file into a stream (object_store reads it
//! 8 KiB at a time), so downloads from disk are a little slower through it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::BoxFuture;
use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result, UploadPart,
};

type BoxStream<T> = futures_util::stream::BoxStream<'static, T>;

/// A snapshot of a [`CountingStore`]'s counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Bytes handed to the inner store and accepted by it.
    pub bytes_written: u64,
    /// Bytes read from the inner store and handed to a caller.
    pub bytes_read: u64,
    /// Objects written: successful puts and completed multipart uploads.
    pub objects_put: u64,
    /// Objects the inner store reported deleted.
    pub objects_deleted: u64,
}

/// The live counters, shared with the streams and uploads the store hands out.
#[derive(Debug, Default)]
struct Counters {
    bytes_written: AtomicU64,
    bytes_read: AtomicU64,
    objects_put: AtomicU64,
    objects_deleted: AtomicU64,
}

/// Adds `n` to `counter`. Counters are independent tallies, so no ordering is needed.
fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// An [`ObjectStore`] that passes every call to `S` and counts the bytes and objects written,
/// read and deleted. See the [crate docs](crate) for exactly what counts.
#[derive(Debug)]
pub struct CountingStore<S: ObjectStore> {
    inner: S,
    counters: Arc<Counters>,
}

impl<S: ObjectStore> CountingStore<S> {
    /// Wraps `inner`, with every counter at zero.
    pub fn new(inner: S) -> Self {
        Self { inner, counters: Arc::default() }
    }

    /// The wrapped store, to look at it without counting.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The counters now.
    pub fn counts(&self) -> Counts {
        let c = &*self.counters;
        Counts {
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            bytes_read: c.bytes_read.load(Ordering::Relaxed),
            objects_put: c.objects_put.load(Ordering::Relaxed),
            objects_deleted: c.objects_deleted.load(Ordering::Relaxed),
        }
    }
}

impl<S: ObjectStore> fmt::Display for CountingStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountingStore({})", self.inner)
    }
}

/// Counts the bytes of `result` as its payload is read.
fn count_reads(result: GetResult, counters: Arc<Counters>) -> GetResult {
    let GetResult { payload, meta, range, attributes, extensions } = result;
    let stream = match payload {
        GetResultPayload::Stream(stream) => stream,
        // An open local file: let object_store stream the requested range of it.
        file @ GetResultPayload::File(..) => GetResult {
            payload: file,
            meta: meta.clone(),
            range: range.clone(),
            attributes: attributes.clone(),
            extensions: extensions.clone(),
        }
        .into_stream(),
    };
    let counted = stream.inspect_ok(move |chunk| add(&counters.bytes_read, chunk.len() as u64)).boxed();
    GetResult { payload: GetResultPayload::Stream(counted), meta, range, attributes, extensions }
}

// What `#[async_trait]` would generate: every reference argument gets a lifetime of its own
// ('s for `self`, 'a and 'b for paths), all outliving the returned future's ('f).
impl<S: ObjectStore> ObjectStore for CountingStore<S> {
    fn put_opts<'s, 'a, 'f>(
        &'s self,
        location: &'a Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> BoxFuture<'f, Result<PutResult>>
    where
        's: 'f,
        'a: 'f,
        Self: 'f,
    {
        Box::pin(async move {
            let len = payload.content_length() as u64;
            let put = self.inner.put_opts(location, payload, opts).await?;
            add(&self.counters.bytes_written, len);
            add(&self.counters.objects_put, 1);
            Ok(put)
        })
    }

    fn put_multipart_opts<'s, 'a, 'f>(
        &'s self,
        location: &'a Path,
        opts: PutMultipartOptions,
    ) -> BoxFuture<'f, Result<Box<dyn MultipartUpload>>>
    where
        's: 'f,
        'a: 'f,
        Self: 'f,
    {
        Box::pin(async move {
            let inner = self.inner.put_multipart_opts(location, opts).await?;
            let upload: Box<dyn MultipartUpload> = Box::new(CountingUpload { inner, counters: self.counters.clone() });
            Ok(upload)
        })
    }

    fn get_opts<'s, 'a, 'f>(&'s self, location: &'a Path, options: GetOptions) -> BoxFuture<'f, Result<GetResult>>
    where
        's: 'f,
        'a: 'f,
        Self: 'f,
    {
        Box::pin(async move {
            let result = self.inner.get_opts(location, options).await?;
            Ok(count_reads(result, self.counters.clone()))
        })
    }

    fn delete_stream(&self, locations: BoxStream<Result<Path>>) -> BoxStream<Result<Path>> {
        let counters = self.counters.clone();
        self.inner.delete_stream(locations).inspect_ok(move |_| add(&counters.objects_deleted, 1)).boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    fn list_with_delimiter<'s, 'a, 'f>(&'s self, prefix: Option<&'a Path>) -> BoxFuture<'f, Result<ListResult>>
    where
        's: 'f,
        'a: 'f,
        Self: 'f,
    {
        self.inner.list_with_delimiter(prefix)
    }

    fn copy_opts<'s, 'a, 'b, 'f>(
        &'s self,
        from: &'a Path,
        to: &'b Path,
        options: CopyOptions,
    ) -> BoxFuture<'f, Result<()>>
    where
        's: 'f,
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        self.inner.copy_opts(from, to, options)
    }

    fn rename_opts<'s, 'a, 'b, 'f>(
        &'s self,
        from: &'a Path,
        to: &'b Path,
        options: RenameOptions,
    ) -> BoxFuture<'f, Result<()>>
    where
        's: 'f,
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        self.inner.rename_opts(from, to, options)
    }
}

/// A multipart upload of a [`CountingStore`]: counts each part once the inner upload has it,
/// and the object once the upload completes.
#[derive(Debug)]
struct CountingUpload {
    inner: Box<dyn MultipartUpload>,
    counters: Arc<Counters>,
}

impl MultipartUpload for CountingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let len = data.content_length() as u64;
        let part = self.inner.put_part(data);
        let counters = self.counters.clone();
        Box::pin(async move {
            part.await?;
            add(&counters.bytes_written, len);
            Ok(())
        })
    }

    fn complete<'s, 'f>(&'s mut self) -> BoxFuture<'f, Result<PutResult>>
    where
        's: 'f,
        Self: 'f,
    {
        Box::pin(async move {
            let put = self.inner.complete().await?;
            add(&self.counters.objects_put, 1);
            Ok(put)
        })
    }

    fn abort<'s, 'f>(&'s mut self) -> BoxFuture<'f, Result<()>>
    where
        's: 'f,
        Self: 'f,
    {
        self.inner.abort()
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt as _, WriteMultipart};

    use super::*;

    fn path(p: &str) -> Path {
        Path::from(p)
    }

    #[tokio::test]
    async fn puts_reads_and_deletes_are_counted() {
        let store = CountingStore::new(InMemory::new());
        store.put(&path("a"), vec![1u8; 1000].into()).await.expect("put");
        store.put(&path("b"), vec![2u8; 24].into()).await.expect("put");
        assert_eq!(store.counts(), Counts { bytes_written: 1024, objects_put: 2, ..Counts::default() });

        let got = store.get(&path("a")).await.expect("get");
        assert_eq!(store.counts().bytes_read, 0, "nothing is counted before the body is read");
        assert_eq!(got.bytes().await.expect("bytes").len(), 1000);
        assert_eq!(store.counts().bytes_read, 1000);
        assert_eq!(store.get_range(&path("b"), 4..10).await.expect("range").len(), 6);
        assert_eq!(store.counts().bytes_read, 1006, "a range counts only its bytes");
        store.head(&path("a")).await.expect("head");
        assert_eq!(store.counts().bytes_read, 1006, "metadata is not a read");

        store.delete(&path("a")).await.expect("delete");
        assert_eq!(store.counts().objects_deleted, 1);
        assert!(matches!(store.inner().head(&path("a")).await, Err(object_store::Error::NotFound { .. })));
        store.copy(&path("b"), &path("c")).await.expect("copy");
        assert_eq!(store.inner().get(&path("c")).await.expect("copied").bytes().await.expect("bytes").len(), 24);
    }

    #[tokio::test]
    async fn multipart_parts_are_counted_and_the_object_once_complete() {
        let store = CountingStore::new(InMemory::new());
        let mut writer = WriteMultipart::new_with_chunk_size(store.put_multipart(&path("big")).await.expect("mp"), 100);
        writer.write(&[7u8; 250]);
        writer.finish().await.expect("finish");
        assert_eq!(store.counts(), Counts { bytes_written: 250, objects_put: 1, ..Counts::default() });

        let mut upload = store.put_multipart(&path("gone")).await.expect("mp");
        upload.put_part(vec![0u8; 40].into()).await.expect("part");
        upload.abort().await.expect("abort");
        assert_eq!(
            store.counts(),
            Counts { bytes_written: 290, objects_put: 1, ..Counts::default() },
            "an aborted upload's parts were written, but no object was"
        );
        assert!(store.inner().head(&path("gone")).await.is_err());
    }

    #[tokio::test]
    async fn a_failed_put_counts_nothing() {
        let store = CountingStore::new(InMemory::new());
        store.put(&path("a"), vec![1u8; 10].into()).await.expect("put");
        let again = PutOptions { mode: object_store::PutMode::Create, ..PutOptions::default() };
        let refused = store.put_opts(&path("a"), vec![1u8; 10].into(), again).await;
        assert!(matches!(refused, Err(object_store::Error::AlreadyExists { .. })), "{refused:?}");
        assert_eq!(store.counts(), Counts { bytes_written: 10, objects_put: 1, ..Counts::default() });
    }
}
