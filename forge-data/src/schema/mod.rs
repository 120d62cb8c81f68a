//! The schema cache: what the exposed schemas hold, introspected from the catalog and reloaded
//! when DDL announces itself.

mod cache;
mod introspect;
mod model;
mod views;

pub use cache::{RELOAD_CHANNEL, SchemaCache};
pub use introspect::introspect;
pub use model::{
    Cardinality, Column, ComputedField, ComputedRelationship, ForeignKey, Function, FunctionArg, QualifiedName,
    Relation, RelationKind, Relationship, ReturnType, Schema, Volatility,
};
