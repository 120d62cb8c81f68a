//! What the schema cache knows: relations, columns, keys, relationships and functions.

use std::collections::HashMap;
use std::fmt;

/// A schema-qualified name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QualifiedName {
    /// The schema.
    pub schema: String,
    /// The object's name.
    pub name: String,
}

impl QualifiedName {
    /// A qualified name.
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self { schema: schema.into(), name: name.into() }
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// What kind of relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKind {
    /// An ordinary or partitioned table.
    Table,
    /// A view.
    View,
    /// A materialized view.
    MaterializedView,
    /// A foreign table.
    ForeignTable,
}

/// A column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its position (1-based, as `attnum`).
    pub position: i16,
    /// The type as Postgres formats it (`integer`, `text[]`, `character varying(20)`).
    pub data_type: String,
    /// The type's name without modifiers, usable in a cast (`int4`, `_text`, `varchar`).
    pub type_name: String,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// The default expression, if any.
    pub default: Option<String>,
    /// Whether the value is generated (`GENERATED ALWAYS`, identity always, stored generated).
    pub generated: bool,
    /// For arrays, the element type's name.
    pub element_type: Option<String>,
    /// For enums (or arrays of enums), the labels in order.
    pub enum_values: Vec<String>,
    /// The column's comment.
    pub comment: Option<String>,
}

impl Column {
    /// Whether the column is an array.
    pub fn is_array(&self) -> bool {
        self.element_type.is_some()
    }
}

/// A table, view or materialized view.
#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    /// Its name.
    pub name: QualifiedName,
    /// Its kind.
    pub kind: RelationKind,
    /// Columns in position order.
    pub columns: Vec<Column>,
    /// Primary-key columns, in key order (empty when there is none).
    pub primary_key: Vec<String>,
    /// Column sets with a unique index (the primary key among them).
    pub unique_keys: Vec<Vec<String>>,
    /// Whether INSERT, UPDATE and DELETE can work on it (views: auto-updatable or with triggers).
    pub insertable: bool,
    /// See `insertable`.
    pub updatable: bool,
    /// See `insertable`.
    pub deletable: bool,
    /// The relation's comment.
    pub comment: Option<String>,
    /// Functions taking one row of the relation, selectable like columns (PostgREST's
    /// computed fields), in catalog order; overloads for other relations are theirs.
    pub computed_fields: Vec<ComputedField>,
    /// Functions taking one row of the relation and returning rows of an exposed relation,
    /// embeddable like relationships (PostgREST's computed relationships), in catalog order.
    pub computed_relationships: Vec<ComputedRelationship>,
}

impl Relation {
    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The computed field `name` as Postgres resolves `row.name` under `search_path`: none
    /// when a column has that name (columns come first), else the function of the first
    /// schema of the path that has one.
    pub fn computed_field(&self, name: &str, search_path: &[String]) -> Option<&ComputedField> {
        if self.column(name).is_some() {
            return None;
        }
        search_path.iter().find_map(|schema| {
            self.computed_fields.iter().find(|f| f.function.name == name && f.function.schema == *schema)
        })
    }

    /// The computed relationship `name`: a function of that name taking this relation's row,
    /// the one of the first schema of `search_path` that has one, else of any schema (it is
    /// called schema-qualified).
    pub fn computed_relationship(&self, name: &str, search_path: &[String]) -> Option<&ComputedRelationship> {
        let named = || self.computed_relationships.iter().filter(move |r| r.function.name == name);
        search_path.iter().find_map(|schema| named().find(|r| r.function.schema == *schema)).or_else(|| named().next())
    }

    /// Whether `columns` (in any order) are covered by a unique key.
    pub fn is_unique(&self, columns: &[String]) -> bool {
        self.unique_keys.iter().any(|key| key.iter().all(|k| columns.contains(k)))
    }
}

/// A computed field: a function taking exactly one argument, a row of its relation (not
/// variadic, not returning a set), read as `schema.function(row)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputedField {
    /// The function.
    pub function: QualifiedName,
    /// Its return type's name, usable in a cast (`text`, `int8`, `tsvector`).
    pub type_name: String,
}

/// A computed relationship: a function taking exactly one argument, a row of its relation,
/// and returning a row (or `SETOF` rows) of `target`, embedded as `schema.function(row)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputedRelationship {
    /// The function.
    pub function: QualifiedName,
    /// The relation whose rows it returns.
    pub target: QualifiedName,
    /// Whether it yields at most one row: it returns a single row, or `SETOF` with `ROWS 1`.
    pub to_one: bool,
}

/// A foreign key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    /// The constraint's name.
    pub name: String,
    /// The referencing relation.
    pub table: QualifiedName,
    /// The referencing columns.
    pub columns: Vec<String>,
    /// The referenced relation.
    pub foreign_table: QualifiedName,
    /// The referenced columns, pairwise with `columns`.
    pub foreign_columns: Vec<String>,
}

/// How many rows of the target each row of the source relates to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cardinality {
    /// Many source rows point at one target row (the source holds the FK).
    ManyToOne,
    /// One source row is pointed at by many target rows (the target holds the FK).
    OneToMany,
    /// At most one row on each side (the FK columns are unique). `source_holds_fk` tells the
    /// direction.
    OneToOne {
        /// Whether the source holds the FK.
        source_holds_fk: bool,
    },
    /// Through a junction table whose primary key covers both FKs.
    ManyToMany {
        /// The junction table.
        junction: QualifiedName,
        /// The junction's FK to the source.
        source_fk: Box<ForeignKey>,
        /// The junction's FK to the target.
        target_fk: Box<ForeignKey>,
    },
}

/// A relationship from one relation to another, as embedding sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relationship {
    /// The relation embedding.
    pub source: QualifiedName,
    /// The relation embedded.
    pub target: QualifiedName,
    /// The cardinality.
    pub cardinality: Cardinality,
    /// The FK the relationship comes from (for M2M, the junction's FK to the source).
    pub foreign_key: ForeignKey,
}

impl Relationship {
    /// Whether the embed yields at most one row (rendered as an object or null).
    pub fn is_to_one(&self) -> bool {
        matches!(self.cardinality, Cardinality::ManyToOne | Cardinality::OneToOne { .. })
    }

    /// The (source column, target column) pairs joined on, for direct relationships.
    pub fn join_columns(&self) -> Vec<(String, String)> {
        let fk = &self.foreign_key;
        let pairs = fk.columns.iter().cloned().zip(fk.foreign_columns.iter().cloned());
        match self.cardinality {
            Cardinality::ManyToOne | Cardinality::OneToOne { source_holds_fk: true } => pairs.collect(),
            Cardinality::OneToMany | Cardinality::OneToOne { source_holds_fk: false } => {
                pairs.map(|(local, foreign)| (foreign, local)).collect()
            }
            Cardinality::ManyToMany { .. } => Vec::new(),
        }
    }
}

/// How a function may touch the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Volatility {
    /// May write: runs read-write when called with POST.
    Volatile,
    /// Reads only.
    Stable,
    /// Depends on its arguments only.
    Immutable,
}

/// A function argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionArg {
    /// The name (empty for unnamed arguments).
    pub name: String,
    /// The type's name.
    pub type_name: String,
    /// Whether it has a default and may be omitted.
    pub has_default: bool,
    /// Whether it is `VARIADIC`.
    pub variadic: bool,
}

/// What a function returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReturnType {
    /// Nothing (`void`): answered with 204.
    Void,
    /// A scalar (or array) type.
    Scalar(String),
    /// A table's or view's row type.
    Composite(QualifiedName),
    /// `RETURNS TABLE (...)` or `OUT` parameters: these columns.
    Columns(Vec<(String, String)>),
    /// An anonymous `record`.
    Record,
}

/// A function callable through `/rpc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// Its name.
    pub name: QualifiedName,
    /// Its input arguments, in order.
    pub args: Vec<FunctionArg>,
    /// What it returns.
    pub returns: ReturnType,
    /// Whether it returns a set.
    pub returns_set: bool,
    /// Its volatility.
    pub volatility: Volatility,
    /// Its comment.
    pub comment: Option<String>,
}

impl Function {
    /// Whether the function takes a single unnamed `json`/`jsonb` argument (it receives the
    /// whole body).
    pub fn takes_single_json(&self) -> bool {
        matches!(self.single_unnamed(), Some(a) if a.type_name == "json" || a.type_name == "jsonb")
    }

    /// The function's only argument, when it is unnamed: it takes the whole body (PostgREST's
    /// one positional parameter).
    pub fn single_unnamed(&self) -> Option<&FunctionArg> {
        match self.args.as_slice() {
            [a] if a.name.is_empty() => Some(a),
            _ => None,
        }
    }
}

/// An immutable snapshot of the exposed schemas.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// The exposed schemas, the first being the default.
    pub schemas: Vec<String>,
    /// Relations by name.
    pub relations: HashMap<QualifiedName, Relation>,
    /// Functions by name (overloads share a name).
    pub functions: HashMap<QualifiedName, Vec<Function>>,
    /// Foreign keys between exposed relations.
    pub foreign_keys: Vec<ForeignKey>,
    /// Relationships by source relation.
    pub relationships: HashMap<QualifiedName, Vec<Relationship>>,
    /// Whether PostGIS is installed (GeoJSON responses need it).
    pub postgis: bool,
}

impl Schema {
    /// Builds the relationships from the foreign keys and unique keys.
    pub(crate) fn link(&mut self) {
        let mut rels: HashMap<QualifiedName, Vec<Relationship>> = HashMap::new();
        for fk in &self.foreign_keys {
            let unique = self.relations.get(&fk.table).is_some_and(|r| r.is_unique(&fk.columns));
            let (forward, backward) = if unique {
                (Cardinality::OneToOne { source_holds_fk: true }, Cardinality::OneToOne { source_holds_fk: false })
            } else {
                (Cardinality::ManyToOne, Cardinality::OneToMany)
            };
            rels.entry(fk.table.clone()).or_default().push(Relationship {
                source: fk.table.clone(),
                target: fk.foreign_table.clone(),
                cardinality: forward,
                foreign_key: fk.clone(),
            });
            rels.entry(fk.foreign_table.clone()).or_default().push(Relationship {
                source: fk.foreign_table.clone(),
                target: fk.table.clone(),
                cardinality: backward,
                foreign_key: fk.clone(),
            });
        }
        // Many-to-many: a junction whose primary key covers two of its FKs.
        for junction in self.relations.values() {
            if junction.primary_key.is_empty() {
                continue;
            }
            let fks: Vec<&ForeignKey> = self
                .foreign_keys
                .iter()
                .filter(|fk| fk.table == junction.name && fk.columns.iter().all(|c| junction.primary_key.contains(c)))
                .collect();
            for a in &fks {
                for b in &fks {
                    if a.name == b.name {
                        continue;
                    }
                    rels.entry(a.foreign_table.clone()).or_default().push(Relationship {
                        source: a.foreign_table.clone(),
                        target: b.foreign_table.clone(),
                        cardinality: Cardinality::ManyToMany {
                            junction: junction.name.clone(),
                            source_fk: Box::new((*a).clone()),
                            target_fk: Box::new((*b).clone()),
                        },
                        foreign_key: (*a).clone(),
                    });
                }
            }
        }
        self.relationships = rels;
    }

    /// The relation `name` in `schema`.
    pub fn relation(&self, schema: &str, name: &str) -> Option<&Relation> {
        self.relations.get(&QualifiedName::new(schema, name))
    }

    /// The overloads of function `name` in `schema`.
    pub fn function(&self, schema: &str, name: &str) -> &[Function] {
        self.functions.get(&QualifiedName::new(schema, name)).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Relationships whose source is `relation`.
    pub fn relationships_of(&self, relation: &QualifiedName) -> &[Relationship] {
        self.relationships.get(relation).map(Vec::as_slice).unwrap_or(&[])
    }
}
