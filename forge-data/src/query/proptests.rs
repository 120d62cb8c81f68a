//! Property tests for the PostgREST query-string parser and renderer. They build syntax trees
//! of every shape, so they live inside the crate: the trees are non-exhaustive outside it.

use crate::query::{
    Aggregate, AggregateFunction, ApiQuery, Embed, Field, Filter, FtsOperator, IsValue, JoinType, JsonArrow,
    JsonOperand, JsonStep, LogicFilter, LogicOp, LogicTree, NullsOrder, OpExpr, Operation, Operator, OrderDirection,
    OrderSpec, OrderTerm, Quantifier, RangeSpec, SelectField, SelectItem, decode_query, parse_prefer, parse_query,
    parse_range_header,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// `cases` cases, or `PROPTEST_CASES` when set (for longer local runs); never writes regression files.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

// ---------------------------------------------------------------------------------------------
// Generators of valid syntax trees

/// Names of every shape: identifiers, keywords, punctuation-laden and arbitrary unicode text.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z_][a-z0-9_]{0,6}",
        1 => prop::sample::select(vec![
            "count", "inner", "left", "and", "or", "not", "order", "limit", "offset", "select", "columns",
            "on_conflict", "asc", "desc", "nullsfirst", "null", "in", "is", "eq", "0", "-1", "*", "", " ",
        ])
        .prop_map(str::to_owned),
        2 => "[a-z \"\\\\.,():!>{}*\\-]{0,8}",
        1 => "(?s).{0,6}",
    ]
}

/// Raw values, including every character that is special somewhere in the grammar.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9 %*]{0,8}",
        3 => "[a-z0-9 \"\\\\.,(){}\\[\\]:!>-]{0,12}",
        1 => "(?s).{0,8}",
    ]
}

fn type_name() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9_]{0,7}"
}

fn json_path() -> impl Strategy<Value = Vec<JsonStep>> {
    let operand = prop_oneof![name().prop_map(JsonOperand::Key), any::<i64>().prop_map(JsonOperand::Index)];
    (vec(operand, 0..3), any::<bool>()).prop_map(|(operands, text_last)| {
        let n = operands.len();
        operands
            .into_iter()
            .enumerate()
            .map(|(i, operand)| {
                let arrow = if text_last && i + 1 == n { JsonArrow::Text } else { JsonArrow::Json };
                JsonStep { arrow, operand }
            })
            .collect()
    })
}

fn field() -> impl Strategy<Value = Field> {
    (name(), json_path()).prop_map(|(name, json_path)| Field { name, json_path })
}

fn select_item() -> impl Strategy<Value = SelectItem> {
    let aggregate = (prop::sample::select(AggregateFunction::ALL.to_vec()), prop::option::of(type_name()))
        .prop_map(|(function, cast)| Aggregate { function, cast });
    let leaf = prop_oneof![
        1 => Just(SelectItem::Star),
        4 => (prop::option::of(name()), field(), prop::option::of(type_name()), prop::option::of(aggregate))
            .prop_map(|(alias, field, cast, aggregate)| SelectItem::Field(SelectField { alias, field, cast, aggregate })),
        1 => (prop::option::of(name()), prop::option::of(type_name()))
            .prop_map(|(alias, cast)| SelectItem::Count { alias, cast }),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        (
            any::<bool>(),
            prop::option::of(name()),
            name(),
            prop::option::of(name()),
            prop::option::of(prop::sample::select(vec![JoinType::Inner, JoinType::Left])),
            vec(inner, 0..4),
        )
            .prop_map(|(spread, alias, relation, hint, join, items)| {
                SelectItem::Embed(Embed {
                    spread,
                    alias: if spread { None } else { alias },
                    relation,
                    hint,
                    join,
                    items,
                })
            })
    })
}

fn op_expr() -> impl Strategy<Value = OpExpr> {
    let operation = prop_oneof![
        4 => (prop::sample::select(Operator::ALL.to_vec()), prop::option::of(prop::sample::select(vec![Quantifier::Any, Quantifier::All])), value())
            .prop_map(|(op, quantifier, value)| Operation::Op {
                op,
                quantifier: quantifier.filter(|_| op.supports_quantifier()),
                value,
            }),
        2 => vec(value(), 0..4).prop_map(Operation::In),
        1 => prop::sample::select(IsValue::ALL.to_vec()).prop_map(Operation::Is),
        2 => (prop::sample::select(FtsOperator::ALL.to_vec()), prop::option::of("[a-z_]{1,8}"), value())
            .prop_map(|(op, config, value)| Operation::Fts { op, config, value }),
    ];
    (any::<bool>(), operation).prop_map(|(negated, operation)| OpExpr { negated, operation })
}

fn logic_op() -> impl Strategy<Value = LogicOp> {
    prop::sample::select(vec![LogicOp::And, LogicOp::Or])
}

fn logic_tree() -> impl Strategy<Value = LogicTree> {
    let leaf = (field(), op_expr()).prop_map(|(field, expr)| LogicTree::Cond { field, expr });
    leaf.prop_recursive(4, 24, 4, |inner| {
        (any::<bool>(), logic_op(), vec(inner, 1..4)).prop_map(|(negated, op, children)| LogicTree::Expr {
            negated,
            op,
            children,
        })
    })
}

fn path() -> impl Strategy<Value = Vec<String>> {
    vec(name(), 0..3)
}

fn order_spec() -> impl Strategy<Value = OrderSpec> {
    let term = (
        prop::option::of(name()),
        field(),
        prop::option::of(prop::sample::select(vec![OrderDirection::Asc, OrderDirection::Desc])),
        prop::option::of(prop::sample::select(vec![NullsOrder::First, NullsOrder::Last])),
    )
        .prop_map(|(relation, field, direction, nulls)| OrderTerm { relation, field, direction, nulls });
    (path(), vec(term, 1..4)).prop_map(|(path, terms)| OrderSpec { path, terms })
}

fn ranges() -> impl Strategy<Value = Vec<RangeSpec>> {
    let spec = (path(), prop::option::of(any::<u64>()), any::<u64>(), any::<bool>()).prop_map(
        |(path, limit, offset, with_offset)| {
            // At least one of the two is present, or the spec would not be rendered at all.
            let offset = (with_offset || limit.is_none()).then_some(offset);
            RangeSpec { path, limit, offset }
        },
    );
    vec(spec, 0..3).prop_map(|specs| {
        let mut unique: Vec<RangeSpec> = Vec::new();
        for spec in specs {
            if !unique.iter().any(|u| u.path == spec.path) {
                unique.push(spec);
            }
        }
        unique
    })
}

fn api_query() -> impl Strategy<Value = ApiQuery> {
    (
        vec(select_item(), 0..4),
        vec((path(), field(), op_expr()).prop_map(|(path, field, expr)| Filter { path, field, expr }), 0..4),
        vec(
            (path(), any::<bool>(), logic_op(), vec(logic_tree(), 1..4))
                .prop_map(|(path, negated, op, children)| LogicFilter { path, negated, op, children }),
            0..3,
        ),
        vec(order_spec(), 0..3),
        ranges(),
        prop::option::of(vec(name(), 1..4)),
        prop::option::of(vec(name(), 1..4)),
        vec(("p_[a-z0-9]{0,5}", "[0-9]{0,5}"), 0..3),
    )
        .prop_map(|(select, filters, logic, order, ranges, columns, on_conflict, params)| ApiQuery {
            select,
            filters,
            logic,
            order,
            ranges,
            columns,
            on_conflict,
            params,
        })
}

// ---------------------------------------------------------------------------------------------
// Generators of arbitrary (mostly invalid) input

/// Strings over the grammar's alphabet, so parsers get past the first character often.
fn grammar_soup() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-c0-9*(),!:.\"\\\\ {}>-]{0,30}",
        "((not\\.)?(eq|in|is|cs|like\\(any\\)|fts\\(english\\)|and|or)[.(]|[a-c]|\\(|\\)|,|\\.|->>?|\"|::|!inner|\\.\\.\\.|null|\\{|\\}| ){0,16}",
        "(?s).{0,40}",
        any::<String>(),
    ]
}

fn soup_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("select".to_owned()),
        Just("order".to_owned()),
        Just("or".to_owned()),
        Just("not.and".to_owned()),
        Just("limit".to_owned()),
        Just("offset".to_owned()),
        Just("columns".to_owned()),
        Just("on_conflict".to_owned()),
        "[a-c]{1,3}(\\.[a-c]{1,3}){0,2}(\\.(order|or|limit|not\\.and))?",
        grammar_soup(),
    ]
}

/// A concatenation of grammar tokens.
fn tokens(alphabet: &'static [&'static str]) -> impl Strategy<Value = String> {
    vec(prop::sample::select(alphabet), 0..14).prop_map(|t| t.concat())
}

/// Plausible (often valid, often slightly off) parameters of every kind.
fn token_pair() -> impl Strategy<Value = (String, String)> {
    const SELECT: &[&str] = &[
        "a",
        "b1",
        "*",
        ",",
        "(",
        ")",
        "!inner",
        "!left",
        "!fk",
        "a:",
        "->",
        "->>",
        "0",
        "::int",
        ".sum()",
        ".count()",
        "count()",
        "\"q w\"",
        "...",
        " ",
        "-1",
        "\"x\\\"y\"",
    ];
    const ORDER: &[&str] = &[
        "a",
        "b",
        ",",
        ".asc",
        ".desc",
        ".nullsfirst",
        ".nullslast",
        "r(",
        ")",
        "->",
        "->>",
        "k",
        "0",
        " ",
        "\"q w\"",
    ];
    const LOGIC: &[&str] = &[
        "(",
        ")",
        ",",
        "a.",
        "b->k.",
        "eq.",
        "not.",
        "in.(1,\"2,3\")",
        "is.null",
        "cs.{1,2}",
        "fts(english).",
        "and(",
        "or(",
        "not.and(",
        "x",
        "\"q,w\"",
        " ",
        "{",
        "}",
        "\"",
    ];
    const VALUE: &[&str] = &[
        "not.",
        "eq.",
        "like(any).",
        "in.(",
        "is.",
        "fts(english).",
        "cs.",
        "a",
        ",",
        "(",
        ")",
        "\"",
        "{",
        "}",
        " ",
        "null",
        ".",
    ];
    const KEY: &[&str] = &["a", "b", ".", "->", "->>", "k", "\"q.w\"", " ", "not", "or", "order", "limit", "-"];
    prop_oneof![
        tokens(SELECT).prop_map(|v| ("select".to_owned(), v)),
        tokens(ORDER).prop_map(|v| ("order".to_owned(), v)),
        tokens(LOGIC).prop_map(|v| ("or".to_owned(), format!("({v})"))),
        tokens(LOGIC).prop_map(|v| ("r.not.and".to_owned(), v)),
        (tokens(KEY), tokens(VALUE)),
        tokens(ORDER).prop_map(|v| ("columns".to_owned(), v)),
    ]
}

/// The rendering of a valid tree with a few random single-character edits.
fn mutated_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    const CHARS: &[char] = &['a', ' ', ',', '.', '(', ')', '"', '\\', '{', '}', ':', '!', '-', '>', '*', '0', 'é'];
    let edit = (any::<prop::sample::Index>(), any::<prop::sample::Index>(), 0..4u8, prop::sample::select(CHARS));
    (api_query(), vec(edit, 0..3)).prop_map(|(q, edits)| {
        let mut pairs = q.to_pairs();
        for (which, at, kind, ch) in edits {
            if pairs.is_empty() {
                break;
            }
            let i = which.index(pairs.len());
            let Some((key, value)) = pairs.get_mut(i) else { continue };
            let target = if kind == 3 { key } else { value };
            let mut chars: Vec<char> = target.chars().collect();
            let pos = at.index(chars.len() + 1);
            match kind {
                1 if pos < chars.len() => {
                    chars.remove(pos);
                }
                2 if pos < chars.len() => chars[pos] = ch,
                _ => chars.insert(pos, ch),
            }
            *target = chars.into_iter().collect();
        }
        pairs
    })
}

proptest! {
    #![proptest_config(config(1024))]

    /// (1) Nothing panics, whatever the input.
    #[test]
    fn parse_query_never_panics(
        select in grammar_soup(),
        order in grammar_soup(),
        or in grammar_soup(),
        limit in grammar_soup(),
        extra in vec((soup_key(), grammar_soup()), 0..4),
    ) {
        let mut pairs = vec![
            ("select".to_owned(), select),
            ("order".to_owned(), order),
            ("or".to_owned(), or),
            ("limit".to_owned(), limit),
        ];
        pairs.extend(extra);
        for pair in &pairs {
            if let Err(e) = parse_query(std::slice::from_ref(pair)) {
                prop_assert!(matches!(e.code, "PGRST100" | "PGRST103"), "{e:?}");
                prop_assert!(e.message.chars().count() < 300, "{}", e.message);
            }
        }
        let _ = parse_query(&pairs);
    }

    /// Headers never panic either.
    #[test]
    fn headers_never_panic(a in grammar_soup(), b in grammar_soup()) {
        let prefs = parse_prefer([a.as_str(), b.as_str()]);
        let _ = prefs.check_strict();
        let _ = prefs.applied_header();
        let _ = parse_range_header(&a);
        let _ = decode_query(&b);
    }

    /// (3) Whatever parses renders to something that parses to the same tree.
    #[test]
    fn parse_render_parse_is_stable(
        pairs in prop_oneof![
            vec((soup_key(), grammar_soup()), 1..4),
            vec(token_pair(), 1..4),
            mutated_pairs(),
        ],
    ) {
        if let Ok(q) = parse_query(&pairs) {
            prop_assert_eq!(parse_query(&q.to_pairs()), Ok(q));
        }
        for pair in &pairs {
            if let Ok(q) = parse_query(std::slice::from_ref(pair)) {
                prop_assert_eq!(parse_query(&q.to_pairs()), Ok(q));
            }
        }
    }
}

proptest! {
    #![proptest_config(config(512))]

    /// (2) Every valid tree renders to pairs (and to a URL-encoded query string) that parse back
    /// to the same tree.
    #[test]
    fn valid_trees_round_trip(q in api_query()) {
        let pairs = q.to_pairs();
        prop_assert_eq!(parse_query(&pairs), Ok(q.clone()), "pairs: {:?}", pairs);
        prop_assert_eq!(parse_query(&decode_query(&q.to_query_string())), Ok(q));
    }
}

#[test]
fn deeply_nested_input_is_rejected_without_overflow() {
    let select = format!("{}x{}", "a(".repeat(20_000), ")".repeat(20_000));
    let logic = format!("({}a.eq.1{})", "or(".repeat(20_000), ")".repeat(20_000));
    for (k, v) in [("select", select), ("or", logic)] {
        let e = parse_query(&[(k.to_owned(), v)]).expect_err("too deep");
        assert_eq!(e.code, "PGRST100");
    }
}

#[test]
fn captured_client_requests_parse() {
    let cases = [
        "select=id%2Cname%2Ccities%21inner%28name%29%2C%22weird+col%22",
        "select=*&or=%28a.eq.1%2Cand%28b.gt.2%2Cc.lt.3%29%29",
        "select=*%2Ccities%28*%29&cities.or=%28name.eq.x%2Cname.eq.y%29&cities.order=name.asc&cities.limit=2",
        "name=in.%28a%2C%22b%2Cc%22%2Cd%29&tags=like%28any%29.%7Ba*%2Cb%25%7D",
        "body=wfts%28english%29.cat+%26+dog&order=name.desc.nullsfirst%2Cid.asc&offset=10&limit=5",
        "on_conflict=a,b&columns=%22a%22,%22b%22&select=a",
        "clients=not.is.null&select=id%2Cclients%21inner%28%29",
    ];
    for raw in cases {
        let q = parse_query(&decode_query(raw)).unwrap_or_else(|e| panic!("{raw}: {e:?}"));
        assert_eq!(parse_query(&q.to_pairs()), Ok(q.clone()), "{raw}");
        assert!(q.params.is_empty(), "{raw}: {:?}", q.params);
    }
}

#[test]
fn pathological_logic_values_parse_in_linear_time() {
    // Thousands of unclosed `{` used to make every value scan to the end of the input.
    let value = format!("({}a.eq.1)", "a.eq.{,".repeat(10_000));
    let started = std::time::Instant::now();
    let q = parse_query(&[("or".to_owned(), value)]).expect("parses");
    assert_eq!(q.logic[0].children.len(), 10_001);
    // Generous bound (debug build, shared machine); the quadratic version took ~16 s here.
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(parse_query(&q.to_pairs()), Ok(q));
}
