//! The PostgREST query-string grammar: `select`, filters, logic trees, `order`, `limit` and
//! `offset`, plus the `Prefer` and `Range` headers. HTTP-free and database-free: it turns
//! strings into a syntax tree and back, and knows nothing of the schema.
