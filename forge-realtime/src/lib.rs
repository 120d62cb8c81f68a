//! # forge-realtime
//!
//! The Supabase Realtime protocol (Phoenix channels over WebSockets) for Forge, so that
//! `supabase.channel(...)` works unchanged at `/realtime/v1/websocket`.
//!
//! It will carry postgres_changes (logical decoding with `pgoutput`, on the
//! `supabase_realtime` publication that forge-core's bootstrap creates, checked against each
//! subscriber's RLS), broadcast and presence, with a `Bus` trait for fan-out across nodes.
//!
//! Status: not implemented yet.
