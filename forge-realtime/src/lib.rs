//! # forge-realtime
//!
//! The Supabase Realtime protocol (Phoenix channels over WebSockets) for Forge, so that
//! `supabase.channel(...)` works unchanged at `/realtime/v1/websocket`.

pub mod bus;
#[allow(dead_code)] // wired in by the socket layer
mod cdc;
