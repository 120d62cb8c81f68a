//! The schema cache: what the exposed schemas hold, introspected from the catalog and reloaded
//! when DDL announces itself.
