//! A decoder of the binary `pgoutput` protocol, version 1 (Postgres docs: "Logical
//! Replication Message Formats").
//!
//! Each row of `pg_logical_slot_peek_binary_changes` is one message. [`Decoder`] parses them
//! and keeps the relation cache: pgoutput sends a `Relation` message before the first change
//! of each relation in each decoding session (and again after the relation changed), and
//! changes refer to it by oid.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// A WAL position (`pg_lsn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(crate) struct Lsn(pub(crate) u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = DecodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || DecodeError::Malformed(format!("invalid LSN {s:?}"));
        let (hi, lo) = s.split_once('/').ok_or_else(bad)?;
        let hi = u64::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u64::from_str_radix(lo, 16).map_err(|_| bad())?;
        if hi > u64::from(u32::MAX) || lo > u64::from(u32::MAX) {
            return Err(bad());
        }
        Ok(Lsn(hi << 32 | lo))
    }
}

/// A message that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// The buffer ended inside a message.
    #[error("pgoutput message truncated")]
    Truncated,
    /// An unknown message or tuple tag, or a field out of range.
    #[error("malformed pgoutput message: {0}")]
    Malformed(String),
    /// A change for a relation whose `Relation` message was not seen in this session.
    #[error("pgoutput change for unknown relation {0}")]
    UnknownRelation(u32),
}

/// A column of a `Relation` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RelationColumn {
    /// Part of the replica identity (all columns with `REPLICA IDENTITY FULL`).
    pub(crate) key: bool,
    /// The column's name.
    pub(crate) name: String,
    /// Its type's oid.
    pub(crate) type_oid: u32,
    /// Its `atttypmod`.
    pub(crate) type_modifier: i32,
}

/// A `Relation` message: a table's shape as of the changes that follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Relation {
    /// The table's oid.
    pub(crate) oid: u32,
    /// Its schema (`pg_catalog` when pgoutput sends an empty string).
    pub(crate) namespace: String,
    /// Its name.
    pub(crate) name: String,
    /// `relreplident`: `d` default, `n` nothing, `f` full, `i` index.
    pub(crate) replica_identity: u8,
    /// The published columns, in order (no dropped or generated ones).
    pub(crate) columns: Vec<RelationColumn>,
}

/// One column's value in a `TupleData`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TupleValue {
    /// `n`: NULL.
    Null,
    /// `u`: an unchanged TOASTed value, not sent.
    UnchangedToast,
    /// `t`: the type's text output.
    Text(String),
    /// `b`: the type's binary output (only with the `binary` option, which we do not set).
    Binary(Vec<u8>),
}

/// Which old tuple an UPDATE or DELETE carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OldKind {
    /// `K`: the replica identity's columns (the others are null).
    Key,
    /// `O`: the whole old row (`REPLICA IDENTITY FULL`).
    Full,
}

/// A decoded pgoutput message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Message {
    /// `B`: a transaction starts.
    Begin {
        /// The LSN of its commit record.
        final_lsn: Lsn,
        /// Its commit time, in microseconds since 2000-01-01 UTC.
        timestamp: i64,
        /// Its transaction id.
        xid: u32,
    },
    /// `C`: it committed.
    Commit {
        /// Unused flags.
        flags: u8,
        /// The LSN of the commit record.
        commit_lsn: Lsn,
        /// The end of the commit record: where decoding can resume after this transaction.
        end_lsn: Lsn,
        /// The commit time, in microseconds since 2000-01-01 UTC.
        timestamp: i64,
    },
    /// `O`: the changes came from another origin.
    Origin {
        /// The commit LSN on the origin server.
        lsn: Lsn,
        /// The origin's name.
        name: String,
    },
    /// `R`: a table's shape (kept in the decoder's cache).
    Relation(Arc<Relation>),
    /// `Y`: a non-built-in type's name.
    Type {
        /// The type's oid.
        oid: u32,
        /// Its schema.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// `I`: a row was inserted.
    Insert {
        /// The table.
        relation: Arc<Relation>,
        /// The new row.
        new: Vec<TupleValue>,
    },
    /// `U`: a row was updated.
    Update {
        /// The table.
        relation: Arc<Relation>,
        /// The old row's identity or whole old row, when the key changed or with
        /// `REPLICA IDENTITY FULL`.
        old: Option<(OldKind, Vec<TupleValue>)>,
        /// The new row (`UnchangedToast` for TOASTed values that did not change).
        new: Vec<TupleValue>,
    },
    /// `D`: a row was deleted.
    Delete {
        /// The table.
        relation: Arc<Relation>,
        /// The old row's identity or whole old row.
        old: (OldKind, Vec<TupleValue>),
    },
    /// `T`: tables were truncated (Supabase Realtime sends nothing for it).
    Truncate {
        /// Bit 1: CASCADE, bit 2: RESTART IDENTITY.
        options: u8,
        /// The tables.
        relations: Vec<u32>,
    },
    /// `M`: a logical decoding message (`pg_logical_emit_message`); not used here.
    Logical {
        /// Whether it was emitted transactionally.
        transactional: bool,
        /// Its LSN.
        lsn: Lsn,
        /// Its prefix.
        prefix: String,
        /// Its content.
        content: Vec<u8>,
    },
}

/// Decodes pgoutput messages and keeps the relation cache.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    relations: HashMap<u32, Arc<Relation>>,
}

impl Decoder {
    /// Decodes one message. A `Relation` message replaces the cached shape of its table.
    pub(crate) fn decode(&mut self, buf: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader { buf, pos: 0 };
        let message = match r.u8()? {
            b'B' => Message::Begin { final_lsn: r.lsn()?, timestamp: r.i64()?, xid: r.u32()? },
            b'C' => Message::Commit { flags: r.u8()?, commit_lsn: r.lsn()?, end_lsn: r.lsn()?, timestamp: r.i64()? },
            b'O' => Message::Origin { lsn: r.lsn()?, name: r.cstr()? },
            b'R' => {
                let oid = r.u32()?;
                let namespace = r.cstr()?;
                let name = r.cstr()?;
                let replica_identity = r.u8()?;
                let n = r.u16()?;
                let mut columns = Vec::with_capacity(usize::from(n));
                for _ in 0..n {
                    let flags = r.u8()?;
                    columns.push(RelationColumn {
                        key: flags & 1 != 0,
                        name: r.cstr()?,
                        type_oid: r.u32()?,
                        type_modifier: r.i32()?,
                    });
                }
                let namespace = if namespace.is_empty() { "pg_catalog".to_owned() } else { namespace };
                let relation = Arc::new(Relation { oid, namespace, name, replica_identity, columns });
                self.relations.insert(oid, relation.clone());
                Message::Relation(relation)
            }
            b'Y' => Message::Type { oid: r.u32()?, namespace: r.cstr()?, name: r.cstr()? },
            b'I' => {
                let relation = self.relation(r.u32()?)?;
                r.expect(b'N')?;
                Message::Insert { new: r.tuple()?, relation }
            }
            b'U' => {
                let relation = self.relation(r.u32()?)?;
                let old = match r.u8()? {
                    b'K' => Some((OldKind::Key, r.tuple()?)),
                    b'O' => Some((OldKind::Full, r.tuple()?)),
                    b'N' => None,
                    t => return Err(DecodeError::Malformed(format!("update tuple tag {:?}", char::from(t)))),
                };
                if old.is_some() {
                    r.expect(b'N')?;
                }
                Message::Update { new: r.tuple()?, old, relation }
            }
            b'D' => {
                let relation = self.relation(r.u32()?)?;
                let kind = match r.u8()? {
                    b'K' => OldKind::Key,
                    b'O' => OldKind::Full,
                    t => return Err(DecodeError::Malformed(format!("delete tuple tag {:?}", char::from(t)))),
                };
                Message::Delete { old: (kind, r.tuple()?), relation }
            }
            b'T' => {
                let n = r.u32()?;
                let options = r.u8()?;
                let relations = (0..n).map(|_| r.u32()).collect::<Result<_, _>>()?;
                Message::Truncate { options, relations }
            }
            b'M' => {
                let flags = r.u8()?;
                let lsn = r.lsn()?;
                let prefix = r.cstr()?;
                let len = r.len()?;
                Message::Logical { transactional: flags & 1 != 0, lsn, prefix, content: r.bytes(len)?.to_vec() }
            }
            t => return Err(DecodeError::Malformed(format!("message tag {:?}", char::from(t)))),
        };
        if r.pos != buf.len() {
            return Err(DecodeError::Malformed(format!("{} trailing bytes", buf.len() - r.pos)));
        }
        Ok(message)
    }

    fn relation(&self, oid: u32) -> Result<Arc<Relation>, DecodeError> {
        self.relations.get(&oid).cloned().ok_or(DecodeError::UnknownRelation(oid))
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or(DecodeError::Truncated)?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn lsn(&mut self) -> Result<Lsn, DecodeError> {
        Ok(Lsn(u64::from_be_bytes(self.array()?)))
    }

    /// An Int32 length that must not be negative.
    fn len(&mut self) -> Result<usize, DecodeError> {
        let n = self.i32()?;
        usize::try_from(n).map_err(|_| DecodeError::Malformed(format!("negative length {n}")))
    }

    fn expect(&mut self, tag: u8) -> Result<(), DecodeError> {
        match self.u8()? {
            t if t == tag => Ok(()),
            t => Err(DecodeError::Malformed(format!("expected {:?}, found {:?}", char::from(tag), char::from(t)))),
        }
    }

    /// A NUL-terminated string (identifiers: the database encoding, UTF-8 here).
    fn cstr(&mut self) -> Result<String, DecodeError> {
        let rest = &self.buf[self.pos..];
        let nul = rest.iter().position(|&b| b == 0).ok_or(DecodeError::Truncated)?;
        let s = String::from_utf8_lossy(&rest[..nul]).into_owned();
        self.pos += nul + 1;
        Ok(s)
    }

    fn tuple(&mut self) -> Result<Vec<TupleValue>, DecodeError> {
        let n = self.u16()?;
        let mut values = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            values.push(match self.u8()? {
                b'n' => TupleValue::Null,
                b'u' => TupleValue::UnchangedToast,
                b't' => {
                    let len = self.len()?;
                    // Text output is in the database encoding; Forge's databases are UTF-8.
                    TupleValue::Text(String::from_utf8_lossy(self.bytes(len)?).into_owned())
                }
                b'b' => {
                    let len = self.len()?;
                    TupleValue::Binary(self.bytes(len)?.to_vec())
                }
                t => return Err(DecodeError::Malformed(format!("tuple value tag {:?}", char::from(t)))),
            });
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds messages byte by byte, as pgoutput writes them.
    #[derive(Default)]
    struct Buf(Vec<u8>);

    impl Buf {
        fn tag(mut self, t: u8) -> Self {
            self.0.push(t);
            self
        }
        fn u16(mut self, v: u16) -> Self {
            self.0.extend(v.to_be_bytes());
            self
        }
        fn u32(mut self, v: u32) -> Self {
            self.0.extend(v.to_be_bytes());
            self
        }
        fn i32(mut self, v: i32) -> Self {
            self.0.extend(v.to_be_bytes());
            self
        }
        fn u64(mut self, v: u64) -> Self {
            self.0.extend(v.to_be_bytes());
            self
        }
        fn str(mut self, s: &str) -> Self {
            self.0.extend(s.as_bytes());
            self.0.push(0);
            self
        }
        fn text(mut self, s: &str) -> Self {
            self.0.push(b't');
            self.0.extend((s.len() as i32).to_be_bytes());
            self.0.extend(s.as_bytes());
            self
        }
    }

    fn relation_msg() -> Vec<u8> {
        Buf::default()
            .tag(b'R')
            .u32(16384)
            .str("public")
            .str("todos")
            .tag(b'd')
            .u16(3)
            .tag(1)
            .str("id")
            .u32(23)
            .i32(-1)
            .tag(0)
            .str("title")
            .u32(25)
            .i32(-1)
            .tag(0)
            .str("body")
            .u32(25)
            .i32(-1)
            .0
    }

    #[test]
    fn lsn_round_trips() {
        let lsn: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(lsn, Lsn(0x16_B374_D848));
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!(Lsn(0).to_string(), "0/0");
        assert!("16".parse::<Lsn>().is_err());
        assert!("x/1".parse::<Lsn>().is_err());
        assert!("100000000/0".parse::<Lsn>().is_err());
    }

    #[test]
    fn begin_commit_origin_type() {
        let mut d = Decoder::default();
        let begin = Buf::default().tag(b'B').u64(0x1_0000_0010).u64(767_000_000_123_456).u32(733).0;
        assert_eq!(
            d.decode(&begin).unwrap(),
            Message::Begin { final_lsn: Lsn(0x1_0000_0010), timestamp: 767_000_000_123_456, xid: 733 }
        );
        let commit = Buf::default().tag(b'C').tag(0).u64(0x10).u64(0x48).u64(767_000_000_123_456).0;
        assert_eq!(
            d.decode(&commit).unwrap(),
            Message::Commit { flags: 0, commit_lsn: Lsn(0x10), end_lsn: Lsn(0x48), timestamp: 767_000_000_123_456 }
        );
        let origin = Buf::default().tag(b'O').u64(7).str("node_a").0;
        assert_eq!(d.decode(&origin).unwrap(), Message::Origin { lsn: Lsn(7), name: "node_a".into() });
        let ty = Buf::default().tag(b'Y').u32(16400).str("public").str("mood").0;
        assert_eq!(
            d.decode(&ty).unwrap(),
            Message::Type { oid: 16400, namespace: "public".into(), name: "mood".into() }
        );
    }

    #[test]
    fn relation_then_insert_update_delete() {
        let mut d = Decoder::default();
        let Message::Relation(rel) = d.decode(&relation_msg()).unwrap() else { panic!("not a relation") };
        assert_eq!(rel.namespace, "public");
        assert_eq!(rel.name, "todos");
        assert_eq!(rel.replica_identity, b'd');
        assert_eq!(rel.columns.len(), 3);
        assert!(rel.columns[0].key && !rel.columns[1].key);
        assert_eq!(
            (rel.columns[2].name.as_str(), rel.columns[2].type_oid, rel.columns[2].type_modifier),
            ("body", 25, -1)
        );

        let insert = Buf::default().tag(b'I').u32(16384).tag(b'N').u16(3).text("1").text("héllo").tag(b'n').0;
        let Message::Insert { relation, new } = d.decode(&insert).unwrap() else { panic!("not an insert") };
        assert_eq!(relation.oid, 16384);
        assert_eq!(new, vec![TupleValue::Text("1".into()), TupleValue::Text("héllo".into()), TupleValue::Null]);

        // UPDATE with no old tuple and an unchanged TOAST value.
        let update = Buf::default().tag(b'U').u32(16384).tag(b'N').u16(3).text("1").text("x").tag(b'u').0;
        let Message::Update { old, new, .. } = d.decode(&update).unwrap() else { panic!("not an update") };
        assert_eq!(old, None);
        assert_eq!(new[2], TupleValue::UnchangedToast);

        // UPDATE with the old key (K) and with the full old row (O).
        for (tag, kind) in [(b'K', OldKind::Key), (b'O', OldKind::Full)] {
            let update = Buf::default()
                .tag(b'U')
                .u32(16384)
                .tag(tag)
                .u16(3)
                .text("1")
                .tag(b'n')
                .tag(b'n')
                .tag(b'N')
                .u16(3)
                .text("2")
                .text("x")
                .text("y")
                .0;
            let Message::Update { old, new, .. } = d.decode(&update).unwrap() else { panic!("not an update") };
            assert_eq!(old, Some((kind, vec![TupleValue::Text("1".into()), TupleValue::Null, TupleValue::Null])));
            assert_eq!(new[0], TupleValue::Text("2".into()));
        }

        let delete = Buf::default().tag(b'D').u32(16384).tag(b'K').u16(3).text("2").tag(b'n').tag(b'n').0;
        let Message::Delete { old, .. } = d.decode(&delete).unwrap() else { panic!("not a delete") };
        assert_eq!(old.0, OldKind::Key);
        assert_eq!(old.1[0], TupleValue::Text("2".into()));
    }

    #[test]
    fn relation_is_replaced_and_empty_namespace_is_pg_catalog() {
        let mut d = Decoder::default();
        d.decode(&relation_msg()).unwrap();
        let renamed =
            Buf::default().tag(b'R').u32(16384).str("").str("t2").tag(b'f').u16(1).tag(1).str("id").u32(20).i32(-1).0;
        d.decode(&renamed).unwrap();
        let insert = Buf::default().tag(b'I').u32(16384).tag(b'N').u16(1).text("5").0;
        let Message::Insert { relation, .. } = d.decode(&insert).unwrap() else { panic!("not an insert") };
        assert_eq!((relation.namespace.as_str(), relation.name.as_str()), ("pg_catalog", "t2"));
        assert_eq!(relation.columns[0].type_oid, 20);
    }

    #[test]
    fn truncate_and_message() {
        let mut d = Decoder::default();
        let truncate = Buf::default().tag(b'T').u32(2).tag(1).u32(10).u32(11).0;
        assert_eq!(d.decode(&truncate).unwrap(), Message::Truncate { options: 1, relations: vec![10, 11] });
        let msg = Buf::default().tag(b'M').tag(1).u64(99).str("pfx").i32(3).0;
        let mut msg = msg;
        msg.extend(b"abc");
        assert_eq!(
            d.decode(&msg).unwrap(),
            Message::Logical { transactional: true, lsn: Lsn(99), prefix: "pfx".into(), content: b"abc".to_vec() }
        );
    }

    #[test]
    fn errors() {
        let mut d = Decoder::default();
        assert_eq!(d.decode(&[]), Err(DecodeError::Truncated));
        assert!(matches!(d.decode(b"Z"), Err(DecodeError::Malformed(_))));
        let insert = Buf::default().tag(b'I').u32(1).tag(b'N').u16(0).0;
        assert_eq!(d.decode(&insert), Err(DecodeError::UnknownRelation(1)));
        d.decode(&relation_msg()).unwrap();
        // A text value longer than the buffer.
        let short = Buf::default().tag(b'I').u32(16384).tag(b'N').u16(1).tag(b't').i32(10).0;
        assert_eq!(d.decode(&short), Err(DecodeError::Truncated));
        let negative = Buf::default().tag(b'I').u32(16384).tag(b'N').u16(1).tag(b't').i32(-5).0;
        assert!(matches!(d.decode(&negative), Err(DecodeError::Malformed(_))));
        let bad_tag = Buf::default().tag(b'I').u32(16384).tag(b'N').u16(1).tag(b'x').0;
        assert!(matches!(d.decode(&bad_tag), Err(DecodeError::Malformed(_))));
        let mut trailing = Buf::default().tag(b'O').u64(7).str("a").0;
        trailing.push(0);
        assert!(matches!(d.decode(&trailing), Err(DecodeError::Malformed(_))));
        let unterminated = Buf::default().tag(b'O').u64(7).0;
        assert_eq!(d.decode(&unterminated), Err(DecodeError::Truncated));
    }
}
