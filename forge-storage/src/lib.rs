//! # forge-storage
//!
//! The Supabase Storage API for Forge, so that `supabase.storage` (storage-js) and the Python
//! `storage3` client work unchanged at `/storage/v1`.
//!
//! It will own schema `storage` (`storage.buckets`, `storage.objects`, with RLS so Supabase
//! storage policies work verbatim), stream bodies through `object_store::ObjectStore`, and
//! sign short-lived URLs. Errors use [`forge_core::WireFormat::Storage`].
//!
//! Status: not implemented yet.
