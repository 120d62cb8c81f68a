//! Unit tests for the query-string grammar.

use super::*;

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn parse(items: &[(&str, &str)]) -> Result<ApiQuery, ParseError> {
    parse_query(&pairs(items))
}

fn ok(items: &[(&str, &str)]) -> ApiQuery {
    match parse(items) {
        Ok(q) => {
            // Every successful parse must round-trip through the renderer.
            assert_eq!(parse_query(&q.to_pairs()), Ok(q.clone()), "round trip of {items:?}");
            q
        }
        Err(e) => panic!("{items:?} failed: {e:?}"),
    }
}

fn err(items: &[(&str, &str)]) -> ParseError {
    match parse(items) {
        Ok(q) => panic!("{items:?} unexpectedly parsed: {q:?}"),
        Err(e) => e,
    }
}

fn select(s: &str) -> Vec<SelectItem> {
    ok(&[("select", s)]).select
}

fn filter(key: &str, value: &str) -> Filter {
    let q = ok(&[(key, value)]);
    assert_eq!(q.filters.len(), 1, "{key}={value} should be one filter: {q:?}");
    q.filters.into_iter().next().unwrap_or_else(|| unreachable!())
}

fn col(name: &str) -> SelectItem {
    SelectItem::Field(SelectField::column(name))
}

fn key(k: &str) -> JsonStep {
    JsonStep { arrow: JsonArrow::Json, operand: JsonOperand::Key(k.to_owned()) }
}

fn text_key(k: &str) -> JsonStep {
    JsonStep { arrow: JsonArrow::Text, operand: JsonOperand::Key(k.to_owned()) }
}

fn op(op: Operator, value: &str) -> OpExpr {
    OpExpr { negated: false, operation: Operation::Op { op, quantifier: None, value: value.to_owned() } }
}

fn cond(field: &str, expr: OpExpr) -> LogicTree {
    LogicTree::Cond { field: Field::new(field), expr }
}

fn embed(relation: &str, items: Vec<SelectItem>) -> Embed {
    Embed { spread: false, alias: None, relation: relation.to_owned(), hint: None, join: None, items }
}

// ---------------------------------------------------------------------------------------------
// decode_query

#[test]
fn decode_query_handles_plus_percent_and_repeats() {
    let decoded = decode_query("?a=gt.1&a=lt.5&name=eq.John+Doe&x=%22a%2Cb%22&empty=&flag");
    assert_eq!(
        decoded,
        pairs(&[("a", "gt.1"), ("a", "lt.5"), ("name", "eq.John Doe"), ("x", "\"a,b\""), ("empty", ""), ("flag", "")])
    );
}

#[test]
fn captured_client_select_decodes_and_parses() {
    let decoded = decode_query("select=id%2Cname%2Ccities%21inner%28name%29%2C%22weird+col%22");
    assert_eq!(decoded, pairs(&[("select", "id,name,cities!inner(name),\"weird col\"")]));
    let q = parse_query(&decoded).expect("parses");
    assert_eq!(
        q.select,
        vec![
            col("id"),
            col("name"),
            SelectItem::Embed(Embed { join: Some(JoinType::Inner), ..embed("cities", vec![col("name")]) }),
            col("weird col"),
        ]
    );
    assert_eq!(parse_query(&decode_query(&q.to_query_string())), Ok(q));
}

// ---------------------------------------------------------------------------------------------
// select

#[test]
fn select_defaults_to_star() {
    assert_eq!(ok(&[]).select, vec![SelectItem::Star]);
    assert_eq!(ok(&[]).to_pairs(), Vec::<(String, String)>::new());
    assert_eq!(select("*"), vec![SelectItem::Star]);
    assert_eq!(select(""), Vec::<SelectItem>::new());
}

#[test]
fn select_only_first_parameter_counts() {
    assert_eq!(ok(&[("select", "a"), ("select", "b,(")]).select, vec![col("a")]);
}

#[test]
fn select_alias_cast_and_json_paths() {
    assert_eq!(
        select("my_alias:col::text,data->a->>b,arr->0,arr->-1,j->\"0\",\"weird:col\"::int4"),
        vec![
            SelectItem::Field(SelectField {
                alias: Some("my_alias".into()),
                cast: Some("text".into()),
                ..SelectField::column("col")
            }),
            SelectItem::Field(SelectField {
                field: Field { name: "data".into(), json_path: vec![key("a"), text_key("b")] },
                ..SelectField::column("")
            }),
            SelectItem::Field(SelectField {
                field: Field {
                    name: "arr".into(),
                    json_path: vec![JsonStep { arrow: JsonArrow::Json, operand: JsonOperand::Index(0) }],
                },
                ..SelectField::column("")
            }),
            SelectItem::Field(SelectField {
                field: Field {
                    name: "arr".into(),
                    json_path: vec![JsonStep { arrow: JsonArrow::Json, operand: JsonOperand::Index(-1) }],
                },
                ..SelectField::column("")
            }),
            SelectItem::Field(SelectField {
                field: Field { name: "j".into(), json_path: vec![key("0")] },
                ..SelectField::column("")
            }),
            SelectItem::Field(SelectField { cast: Some("int4".into()), ..SelectField::column("weird:col") }),
        ]
    );
}

#[test]
fn select_whitespace_outside_quotes_is_ignored() {
    assert_eq!(select(" id , na me ,\t\"a b\" "), vec![col("id"), col("name"), col("a b")]);
    assert_eq!(select("rel ( a , b )"), vec![SelectItem::Embed(embed("rel", vec![col("a"), col("b")]))]);
}

#[test]
fn select_quoted_names_accept_backslash_escapes() {
    assert_eq!(select(r#""a\"b","c\\d""#), vec![col("a\"b"), col("c\\d")]);
    assert_eq!(render_select(&[col("a\"b"), col("c\\d")]), r#""a\"b","c\\d""#);
}

#[test]
fn select_aggregates() {
    let agg = |name: &str, function, cast: Option<&str>, alias: Option<&str>| {
        SelectItem::Field(SelectField {
            alias: alias.map(Into::into),
            aggregate: Some(Aggregate { function, cast: cast.map(Into::into) }),
            ..SelectField::column(name)
        })
    };
    assert_eq!(
        select("amount.sum(),amount.avg()::int,total:amount.max(),amount.min(),id.count()"),
        vec![
            agg("amount", AggregateFunction::Sum, None, None),
            agg("amount", AggregateFunction::Avg, Some("int"), None),
            agg("amount", AggregateFunction::Max, None, Some("total")),
            agg("amount", AggregateFunction::Min, None, None),
            agg("id", AggregateFunction::Count, None, None),
        ]
    );
    assert_eq!(
        select("price::numeric.sum()::text"),
        vec![SelectItem::Field(SelectField {
            cast: Some("numeric".into()),
            aggregate: Some(Aggregate { function: AggregateFunction::Sum, cast: Some("text".into()) }),
            ..SelectField::column("price")
        })]
    );
    assert_eq!(
        select("count(),n:count()::int,count"),
        vec![
            SelectItem::Count { alias: None, cast: None },
            SelectItem::Count { alias: Some("n".into()), cast: Some("int".into()) },
            col("count"),
        ]
    );
}

#[test]
fn select_embeds() {
    assert_eq!(
        select(
            "*,rel(*),a:rel2(id),rel3!fk_name(id),rel4!inner(id),rel5!left(id),rel6!hint!inner(id),rel7!inner!hint(id),rel8()"
        ),
        vec![
            SelectItem::Star,
            SelectItem::Embed(embed("rel", vec![SelectItem::Star])),
            SelectItem::Embed(Embed { alias: Some("a".into()), ..embed("rel2", vec![col("id")]) }),
            SelectItem::Embed(Embed { hint: Some("fk_name".into()), ..embed("rel3", vec![col("id")]) }),
            SelectItem::Embed(Embed { join: Some(JoinType::Inner), ..embed("rel4", vec![col("id")]) }),
            SelectItem::Embed(Embed { join: Some(JoinType::Left), ..embed("rel5", vec![col("id")]) }),
            SelectItem::Embed(Embed {
                hint: Some("hint".into()),
                join: Some(JoinType::Inner),
                ..embed("rel6", vec![col("id")])
            }),
            SelectItem::Embed(Embed {
                hint: Some("hint".into()),
                join: Some(JoinType::Inner),
                ..embed("rel7", vec![col("id")])
            }),
            SelectItem::Embed(embed("rel8", vec![])),
        ]
    );
}

#[test]
fn select_spread_and_nesting() {
    assert_eq!(
        select("id,...profile!inner(name,...org(title)),a:b(c(d(*)))"),
        vec![
            col("id"),
            SelectItem::Embed(Embed {
                spread: true,
                join: Some(JoinType::Inner),
                ..embed(
                    "profile",
                    vec![col("name"), SelectItem::Embed(Embed { spread: true, ..embed("org", vec![col("title")]) })]
                )
            }),
            SelectItem::Embed(Embed {
                alias: Some("a".into()),
                ..embed(
                    "b",
                    vec![SelectItem::Embed(embed("c", vec![SelectItem::Embed(embed("d", vec![SelectItem::Star]))]))]
                )
            }),
        ]
    );
}

#[test]
fn select_keyword_names_are_quoted_when_rendered() {
    let items = vec![
        SelectItem::Embed(embed("count", vec![])),
        SelectItem::Embed(Embed { hint: Some("inner".into()), ..embed("r", vec![col("*")]) }),
        col("0"),
    ];
    let rendered = render_select(&items);
    assert_eq!(rendered, r#""count"(),r!"inner"("*"),0"#);
    assert_eq!(select(&rendered), items);
}

#[test]
fn select_rejects_bad_syntax() {
    for bad in [
        "id,",
        ",id",
        "id,,name",
        "rel(",
        "rel(id",
        "rel)",
        "id)",
        "*!hint",
        "col::",
        "col::text(10)",
        "col::\"text\"",
        "col::te;xt",
        "col.sum",
        "col.foo()",
        "a->>b->c",
        "data->>-78xy",
        "\"unterminated",
        "rel!a!b(id)",
        "rel!inner!left(id)",
        "...rel",
        "a:*",
        "name!hint",
        "id name(",
        "a:b:c",
    ] {
        let e = err(&[("select", bad)]);
        assert_eq!(e.code, "PGRST100", "{bad}");
        assert_eq!(e.status(), 400);
        assert!(e.message.starts_with("\"failed to parse select parameter ("), "{bad}: {}", e.message);
        assert!(e.message.contains("(line 1, column "), "{bad}: {}", e.message);
        assert!(e.details.is_some(), "{bad}");
    }
}

#[test]
fn select_error_reports_original_column_and_expectation() {
    let e = err(&[("select", "id, name[]")]);
    assert_eq!(e.message, "\"failed to parse select parameter (id, name[])\" (line 1, column 9)");
    assert_eq!(e.details.as_deref(), Some("unexpected \"[\" expecting \",\" or end of input"));
}

#[test]
fn json_paths_are_bounded_in_select_filters_and_order() {
    let path = |steps: usize| format!("data{}", "->a".repeat(steps));
    let longest = path(MAX_JSON_PATH);
    let too_long = path(MAX_JSON_PATH + 1);
    assert_eq!(ok(&[("select", &longest)]).select.len(), 1);
    assert_eq!(ok(&[(&longest, "eq.1")]).filters.len(), 1);
    assert_eq!(ok(&[("order", &format!("{longest}.desc"))]).order.len(), 1);
    let text_last = format!("{}->>b", path(MAX_JSON_PATH - 1));
    assert_eq!(ok(&[("select", &text_last)]).select.len(), 1);
    let huge = path(10_000);
    for (key, value) in [
        ("select", too_long.clone()),
        (too_long.as_str(), "eq.1".to_owned()),
        ("order", format!("{too_long}.asc")),
        ("or", format!("({too_long}.eq.1)")),
        ("select", huge.clone()),
        (huge.as_str(), "eq.1".to_owned()),
        ("order", huge.clone()),
    ] {
        let e = err(&[(key, &value)]);
        assert_eq!(e.code, "PGRST100", "{}", &value[..40]);
        assert_eq!(e.status(), 400);
        assert!(e.details.unwrap_or_default().contains("JSON path is longer than 100 steps"));
    }
}

#[test]
fn select_depth_is_bounded() {
    let ok_depth = format!("{}x{}", "a(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert_eq!(select(&ok_depth).len(), 1);
    let too_deep = format!("{}x{}", "a(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
    let e = err(&[("select", &too_deep)]);
    assert_eq!(e.code, "PGRST100");
    assert!(e.details.unwrap_or_default().contains("nested deeper"));
    // Far deeper input fails the same way, without exhausting the stack.
    let huge = "a(".repeat(100_000);
    assert_eq!(err(&[("select", &huge)]).code, "PGRST100");
}

#[test]
fn error_messages_echo_at_most_200_characters() {
    let long = format!("{},", "x".repeat(5000));
    let e = err(&[("select", &long)]);
    assert!(e.message.chars().count() < 300, "{}", e.message);
    let e = err(&[("id", &format!("eq{}", "(".repeat(3000)))]);
    assert!(e.message.chars().count() < 300, "{}", e.message);
    let unicode = format!("{}!", "é".repeat(400));
    let e = err(&[("select", &unicode)]);
    assert!(e.message.chars().count() < 300);
}

// ---------------------------------------------------------------------------------------------
// filters

#[test]
fn filters_simple_operators() {
    for o in Operator::ALL {
        let f = filter("col", &format!("{}.some value", o.as_str()));
        assert_eq!(f.path, Vec::<String>::new());
        assert_eq!(f.field, Field::new("col"));
        assert_eq!(f.expr, op(o, "some value"));
    }
}

#[test]
fn filter_values_are_kept_raw() {
    assert_eq!(filter("a", "eq.").expr, op(Operator::Eq, ""));
    assert_eq!(filter("a", "eq.x.y,z(\"q\")").expr, op(Operator::Eq, "x.y,z(\"q\")"));
    assert_eq!(filter("a", "like.%x%").expr, op(Operator::Like, "%x%"));
    assert_eq!(filter("a", "cs.{a,b}").expr, op(Operator::Cs, "{a,b}"));
    assert_eq!(filter("a", "cs.{\"k\":1}").expr, op(Operator::Cs, "{\"k\":1}"));
    assert_eq!(filter("a", "sl.[1,2)").expr, op(Operator::Sl, "[1,2)"));
    assert_eq!(filter("a", "match.^x").expr, op(Operator::Match, "^x"));
}

#[test]
fn filter_negation() {
    assert_eq!(filter("a", "not.eq.5").expr, OpExpr { negated: true, ..op(Operator::Eq, "5") });
    assert_eq!(
        filter("a", "not.in.(1,2)").expr,
        OpExpr { negated: true, operation: Operation::In(vec!["1".into(), "2".into()]) }
    );
    assert_eq!(err(&[("a", "not.not.eq.5")]).code, "PGRST100");
}

#[test]
fn filter_in_lists() {
    let list = |v: &str| match filter("a", v).expr.operation {
        Operation::In(items) => items,
        other => panic!("{other:?}"),
    };
    assert_eq!(list("in.(a,\"b,c\",d)"), vec!["a", "b,c", "d"]);
    assert_eq!(list("in.(\"x(y)\",\"\")"), vec!["x(y)", ""]);
    assert_eq!(list("in.(\"say \\\"hi\\\"\",\"back\\\\slash\")"), vec!["say \"hi\"", "back\\slash"]);
    assert_eq!(list("in.()"), Vec::<String>::new());
    assert_eq!(list("in.( a,b )"), vec!["a", "b "]);
    assert_eq!(list("in.(\"a\"b,c)"), vec!["\"a\"b", "c"]);
    assert_eq!(list("in.(1)"), vec!["1"]);
    for bad in ["in.1,2", "in.(1,2", "in.(1)x", "in(any).(1)"] {
        assert_eq!(err(&[("a", bad)]).code, "PGRST100", "{bad}");
    }
}

#[test]
fn filter_is_values() {
    for (text, value) in [
        ("null", IsValue::Null),
        ("NULL", IsValue::Null),
        ("not_null", IsValue::NotNull),
        ("True", IsValue::True),
        ("false", IsValue::False),
        ("unknown", IsValue::Unknown),
    ] {
        assert_eq!(filter("a", &format!("is.{text}")).expr.operation, Operation::Is(value), "{text}");
    }
    for bad in ["is.nil", "is.", "is.nullx", "is.null.x", "is(any).null"] {
        let e = err(&[("a", bad)]);
        assert_eq!(e.code, "PGRST100", "{bad}");
        assert!(e.message.starts_with("\"failed to parse filter ("), "{bad}: {}", e.message);
    }
}

#[test]
fn filter_quantifiers() {
    assert_eq!(
        filter("a", "like(any).{a*,b%}").expr,
        OpExpr {
            negated: false,
            operation: Operation::Op { op: Operator::Like, quantifier: Some(Quantifier::Any), value: "{a*,b%}".into() }
        }
    );
    assert_eq!(
        filter("a", "not.eq(all).{1,2}").expr,
        OpExpr {
            negated: true,
            operation: Operation::Op { op: Operator::Eq, quantifier: Some(Quantifier::All), value: "{1,2}".into() }
        }
    );
    for o in Operator::ALL {
        let res = parse(&[("a", &format!("{}(any).{{1}}", o.as_str()))]);
        assert_eq!(res.is_ok(), o.supports_quantifier(), "{o:?}");
    }
    assert_eq!(err(&[("a", "eq(some).{1}")]).code, "PGRST100");
}

#[test]
fn filter_full_text_search() {
    assert_eq!(
        filter("body", "wfts(english).cat & dog").expr.operation,
        Operation::Fts { op: FtsOperator::Wfts, config: Some("english".into()), value: "cat & dog".into() }
    );
    assert_eq!(
        filter("body", "fts.x").expr.operation,
        Operation::Fts { op: FtsOperator::Fts, config: None, value: "x".into() }
    );
    assert_eq!(
        filter("body", "not.plfts(simple).a b").expr,
        OpExpr {
            negated: true,
            operation: Operation::Fts { op: FtsOperator::Plfts, config: Some("simple".into()), value: "a b".into() }
        }
    );
    assert!(matches!(filter("body", "phfts.x").expr.operation, Operation::Fts { op: FtsOperator::Phfts, .. }));
    for bad in ["fts().x", "fts(eng", "fts(a;b).x", "fts"] {
        assert_eq!(err(&[("body", bad)]).code, "PGRST100", "{bad}");
    }
}

#[test]
fn filter_keys_with_embed_paths_and_json() {
    let f = filter("data->a->>b", "eq.x");
    assert_eq!(f.field, Field { name: "data".into(), json_path: vec![key("a"), text_key("b")] });
    let f = filter("rel.col", "eq.x");
    assert_eq!((f.path, f.field), (vec!["rel".to_owned()], Field::new("col")));
    let f = filter("rel.sub.col->k", "gt.1");
    assert_eq!(f.path, vec!["rel".to_owned(), "sub".to_owned()]);
    assert_eq!(f.field, Field { name: "col".into(), json_path: vec![key("k")] });
    let f = filter("\"a.b\"", "eq.1");
    assert_eq!((f.path, f.field), (vec![], Field::new("a.b")));
    let f = filter("first name", "eq.x");
    assert_eq!(f.field, Field::new("first name"));
    let f = filter("\"order\"", "eq.1");
    assert_eq!(f.field, Field::new("order"));
    let f = filter("rel.\"limit\"", "eq.1");
    assert_eq!((f.path, f.field), (vec!["rel".to_owned()], Field::new("limit")));
}

#[test]
fn embed_null_filters_are_ordinary_filters() {
    let f = filter("clients", "not.is.null");
    assert_eq!(f.field, Field::new("clients"));
    assert_eq!(f.expr, OpExpr { negated: true, operation: Operation::Is(IsValue::Null) });
}

#[test]
fn filter_bad_inputs() {
    let e = err(&[("rel.b", "noop.0")]);
    assert_eq!(e.code, "PGRST100");
    assert_eq!(e.message, "\"failed to parse filter (noop.0)\" (line 1, column 1)");
    assert_eq!(e.details.as_deref(), Some("unknown single value operator noop"));
    for (k, v) in [("a", "eq"), ("a", "not.eq"), ("a.", "eq.1"), ("a b!", "eq.1"), ("rel.x", "5"), ("=", "eq.1")] {
        assert_eq!(err(&[(k, v)]).code, "PGRST100", "{k}={v}");
    }
    let e = err(&[("a->>b->c", "eq.1")]);
    assert!(e.message.starts_with("\"failed to parse tree path ("), "{}", e.message);
}

#[test]
fn non_filter_parameters_are_rpc_arguments() {
    let q = ok(&[("a", "1"), ("b", "{1,2}"), ("c", ""), ("id", "foo.5"), ("x", "eq.1")]);
    assert_eq!(q.params, pairs(&[("a", "1"), ("b", "{1,2}"), ("c", ""), ("id", "foo.5")]));
    assert_eq!(q.filters.len(), 1);
}

#[test]
fn repeated_filter_keys_are_kept_in_order() {
    let q = ok(&[("a", "gt.1"), ("a", "lt.5")]);
    assert_eq!(q.filters.iter().map(Filter::value).collect::<Vec<_>>(), vec!["gt.1", "lt.5"]);
}

// ---------------------------------------------------------------------------------------------
// logic trees

#[test]
fn logic_or_with_nested_and() {
    let q = ok(&[("or", "(a.eq.1,and(b.gt.2,c.lt.3))")]);
    assert_eq!(
        q.logic,
        vec![LogicFilter {
            path: vec![],
            negated: false,
            op: LogicOp::Or,
            children: vec![
                cond("a", op(Operator::Eq, "1")),
                LogicTree::Expr {
                    negated: false,
                    op: LogicOp::And,
                    children: vec![cond("b", op(Operator::Gt, "2")), cond("c", op(Operator::Lt, "3"))],
                },
            ],
        }]
    );
    assert_eq!(q.logic[0].value(), "(a.eq.1,and(b.gt.2,c.lt.3))");
}

#[test]
fn logic_negated_and_embedded_forms() {
    let q = ok(&[
        ("not.or", "(a.eq.1,b.not.is.null)"),
        ("and", "(a.gte.1,not.or(b.eq.1,c.eq.2))"),
        ("not.and", "(a.eq.1)"),
        ("rel.or", "(x.eq.1,y.eq.2)"),
        ("rel.sub.not.and", "(x.eq.1)"),
    ]);
    let keys: Vec<_> = q.logic.iter().map(LogicFilter::key).collect();
    assert_eq!(keys, vec!["not.or", "and", "not.and", "rel.or", "rel.sub.not.and"]);
    assert!(q.logic[0].negated);
    assert_eq!(
        q.logic[0].children[1],
        LogicTree::Cond {
            field: Field::new("b"),
            expr: OpExpr { negated: true, operation: Operation::Is(IsValue::Null) }
        }
    );
    assert_eq!(
        q.logic[1].children[1],
        LogicTree::Expr {
            negated: true,
            op: LogicOp::Or,
            children: vec![cond("b", op(Operator::Eq, "1")), cond("c", op(Operator::Eq, "2"))],
        }
    );
    assert_eq!(q.logic[3].path, vec!["rel".to_owned()]);
    assert_eq!(q.logic[4].path, vec!["rel".to_owned(), "sub".to_owned()]);
    assert!(q.logic[4].negated);
    assert!(q.filters.is_empty());
}

#[test]
fn logic_values_with_commas() {
    let q = ok(&[(
        "or",
        "(id.in.(1,\"2,3\"),tags.cs.{a,b},meta.cs.{\"k\":{\"x\":\"}\"}},name.eq.\"a,b)\",r.sl.\"[1,2)\",x.like(any).{a*,b*},t.wfts(english).cat dog)",
    )]);
    let values: Vec<Operation> = q.logic[0]
        .children
        .iter()
        .map(|c| match c {
            LogicTree::Cond { expr, .. } => expr.operation.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    let raw = |op: Operator, v: &str| Operation::Op { op, quantifier: None, value: v.into() };
    assert_eq!(
        values,
        vec![
            Operation::In(vec!["1".into(), "2,3".into()]),
            raw(Operator::Cs, "{a,b}"),
            raw(Operator::Cs, "{\"k\":{\"x\":\"}\"}}"),
            raw(Operator::Eq, "a,b)"),
            raw(Operator::Sl, "[1,2)"),
            Operation::Op { op: Operator::Like, quantifier: Some(Quantifier::Any), value: "{a*,b*}".into() },
            Operation::Fts { op: FtsOperator::Wfts, config: Some("english".into()), value: "cat dog".into() },
        ]
    );
}

#[test]
fn logic_whitespace_and_json_fields() {
    let q = ok(&[("or", "( a.eq.1 , data->>k.eq.x )")]);
    assert_eq!(
        q.logic[0].children,
        vec![
            cond("a", op(Operator::Eq, "1 ")),
            LogicTree::Cond {
                field: Field { name: "data".into(), json_path: vec![text_key("k")] },
                expr: op(Operator::Eq, "x ")
            },
        ]
    );
}

#[test]
fn logic_unbalanced_brace_falls_back_to_plain_value() {
    let q = ok(&[("or", "(a.eq.{,b.eq.1)")]);
    assert_eq!(q.logic[0].children, vec![cond("a", op(Operator::Eq, "{")), cond("b", op(Operator::Eq, "1"))]);
}

#[test]
fn logic_field_named_like_keywords() {
    let q = ok(&[("or", "(and.eq.1,not.eq.2,or.is.null)")]);
    assert_eq!(q.logic[0].children.len(), 3);
    assert_eq!(q.logic[0].value(), "(\"and\".eq.1,\"not\".eq.2,\"or\".is.null)");
}

#[test]
fn logic_bad_inputs() {
    for bad in [
        "a.eq.1",
        "()",
        "(a.eq.1",
        "(a.eq.1))",
        "(a.eq.1,)",
        "(a.xx.1)",
        "(and())",
        "(or)(",
        "(id.in.1,2)",
        "(a.eq.1,not.xor(b.eq.1))",
        "(a.is.maybe)",
        "(a)",
    ] {
        let e = err(&[("or", bad)]);
        assert_eq!(e.code, "PGRST100", "{bad}");
        assert!(e.message.starts_with("\"failed to parse logic tree ("), "{bad}: {}", e.message);
    }
    let e = err(&[("or", "(a.eq.1,b.xx.2)")]);
    assert_eq!(e.details.as_deref(), Some("unknown single value operator xx"));
    assert_eq!(e.message, "\"failed to parse logic tree ((a.eq.1,b.xx.2))\" (line 1, column 13)");
}

#[test]
fn logic_depth_is_bounded() {
    let nested = |n: usize| format!("({}a.eq.1{})", "and(".repeat(n), ")".repeat(n));
    assert!(parse(&[("or", &nested(MAX_DEPTH - 1))]).is_ok());
    assert_eq!(err(&[("or", &nested(MAX_DEPTH))]).code, "PGRST100");
    assert_eq!(err(&[("or", &nested(50_000))]).code, "PGRST100");
}

// ---------------------------------------------------------------------------------------------
// order

#[test]
fn order_terms() {
    let q = ok(&[("order", "name.desc.nullsfirst,id.asc")]);
    assert_eq!(
        q.order,
        vec![OrderSpec {
            path: vec![],
            terms: vec![
                OrderTerm {
                    relation: None,
                    field: Field::new("name"),
                    direction: Some(OrderDirection::Desc),
                    nulls: Some(NullsOrder::First),
                },
                OrderTerm {
                    relation: None,
                    field: Field::new("id"),
                    direction: Some(OrderDirection::Asc),
                    nulls: None,
                },
            ],
        }]
    );
    assert_eq!(q.order[0].value(), "name.desc.nullsfirst,id.asc");
}

#[test]
fn order_json_related_and_embedded() {
    let q = ok(&[("order", "data->>a.desc,clients(name).asc.nullslast,id.nullslast, x"), ("rel.order", "b")]);
    let terms = &q.order[0].terms;
    assert_eq!(terms[0].field, Field { name: "data".into(), json_path: vec![text_key("a")] });
    assert_eq!(terms[0].direction, Some(OrderDirection::Desc));
    assert_eq!(terms[1].relation.as_deref(), Some("clients"));
    assert_eq!(terms[1].field, Field::new("name"));
    assert_eq!(terms[1].nulls, Some(NullsOrder::Last));
    assert_eq!((terms[2].direction, terms[2].nulls), (None, Some(NullsOrder::Last)));
    assert_eq!(terms[3].field, Field::new("x"));
    assert_eq!(q.order[1].path, vec!["rel".to_owned()]);
    assert_eq!(q.order[1].key(), "rel.order");
}

#[test]
fn order_bad_inputs() {
    for bad in [
        "",
        "id.ac",
        "id.descc",
        "id.nulsfist",
        "id.nullslasttt",
        "id.asc.smth",
        "id.asc.desc",
        "clients(name,id)",
        "id,",
        "id.nullsfirst.asc",
        "(a)",
    ] {
        let e = err(&[("order", bad)]);
        assert_eq!(e.code, "PGRST100", "{bad:?}");
        assert!(e.message.starts_with("\"failed to parse order ("), "{bad}: {}", e.message);
    }
}

// ---------------------------------------------------------------------------------------------
// limit / offset / Range

#[test]
fn limits_and_offsets() {
    let q = ok(&[("limit", "10"), ("offset", "20"), ("rel.limit", "5"), ("rel.sub.offset", "1"), ("limit", "3")]);
    assert_eq!(
        q.ranges,
        vec![
            RangeSpec { path: vec![], limit: Some(3), offset: Some(20) },
            RangeSpec { path: vec!["rel".into()], limit: Some(5), offset: None },
            RangeSpec { path: vec!["rel".into(), "sub".into()], limit: None, offset: Some(1) },
        ]
    );
    assert_eq!(q.range_for(&["rel".to_owned()]).and_then(|r| r.limit), Some(5));
    assert_eq!(ok(&[("offset", "-5")]).ranges[0].offset, Some(0));
    assert_eq!(ok(&[("limit", "0")]).ranges[0].limit, Some(0));
    assert_eq!(ok(&[("limit", "-0")]).ranges[0].limit, Some(0));
}

#[test]
fn bad_limits() {
    let e = err(&[("limit", "-1")]);
    assert_eq!((e.code, e.status()), ("PGRST103", 416));
    assert_eq!(e.details.as_deref(), Some("Limit should be greater than or equal to zero."));
    for bad in ["abc", "", "1.5", "1e3", "+5", "99999999999999999999999", "--1"] {
        let e = err(&[("limit", bad)]);
        assert_eq!((e.code, e.status()), ("PGRST100", 400), "{bad:?}");
    }
    assert_eq!(err(&[("offset", "x")]).code, "PGRST100");
}

#[test]
fn range_header() {
    assert_eq!(parse_range_header("0-9"), Ok(Some((0, Some(9)))));
    assert_eq!(parse_range_header("5-"), Ok(Some((5, None))));
    assert_eq!(parse_range_header("3-3"), Ok(Some((3, Some(3)))));
    for ignored in ["", "-5", "a-b", "1-2-3", " 1-2", "1 - 2", "items=0-9", "99999999999999999999999-"] {
        assert_eq!(parse_range_header(ignored), Ok(None), "{ignored:?}");
    }
    let e = parse_range_header("5-2").expect_err("inverted range");
    assert_eq!((e.code, e.status()), ("PGRST103", 416));
    assert_eq!(
        e.details.as_deref(),
        Some("The lower boundary must be lower than or equal to the upper boundary in the Range header.")
    );
}

// ---------------------------------------------------------------------------------------------
// columns / on_conflict / reserved keys

#[test]
fn columns_and_on_conflict() {
    let q = ok(&[("columns", "\"a\",\"b c\", d"), ("on_conflict", "a,b"), ("select", "a")]);
    assert_eq!(q.columns, Some(vec!["a".into(), "b c".into(), "d".into()]));
    assert_eq!(q.on_conflict, Some(vec!["a".into(), "b".into()]));
    for bad in ["", "a,", "a b!", "\"a"] {
        let e = err(&[("columns", bad)]);
        assert!(e.message.starts_with("\"failed to parse columns parameter ("), "{bad}: {}", e.message);
    }
    assert!(err(&[("on_conflict", "")]).message.contains("on_conflict parameter"));
}

#[test]
fn reserved_keys_are_never_filters() {
    let q = ok(&[
        ("select", "*"),
        ("order", "id"),
        ("limit", "1"),
        ("offset", "1"),
        ("or", "(a.eq.1)"),
        ("and", "(a.eq.1)"),
        ("not.or", "(a.eq.1)"),
        ("not.and", "(a.eq.1)"),
        ("columns", "a"),
        ("on_conflict", "a"),
        ("r.order", "id"),
        ("r.limit", "1"),
        ("r.offset", "1"),
        ("r.or", "(a.eq.1)"),
        ("r.and", "(a.eq.1)"),
        ("r.not.or", "(a.eq.1)"),
        ("r.not.and", "(a.eq.1)"),
    ]);
    assert!(q.filters.is_empty() && q.params.is_empty());
    assert_eq!((q.order.len(), q.ranges.len(), q.logic.len()), (2, 2, 8));
}

#[test]
fn reserved_words_are_quoted_in_rendered_keys() {
    let q = ApiQuery {
        filters: vec![
            Filter { path: vec![], field: Field::new("select"), expr: op(Operator::Eq, "1") },
            Filter { path: vec!["not".into()], field: Field::new("or"), expr: op(Operator::Eq, "1") },
        ],
        logic: vec![LogicFilter {
            path: vec!["not".into()],
            negated: false,
            op: LogicOp::And,
            children: vec![cond("x", op(Operator::Eq, "1"))],
        }],
        ..ApiQuery::default()
    };
    let rendered = q.to_pairs();
    assert_eq!(rendered, pairs(&[("\"select\"", "eq.1"), ("\"not\".\"or\"", "eq.1"), ("\"not\".and", "(x.eq.1)")]));
    assert_eq!(parse_query(&rendered), Ok(q));
}

#[test]
fn logic_values_are_quoted_when_needed() {
    let tree = LogicFilter {
        path: vec![],
        negated: false,
        op: LogicOp::Or,
        children: vec![
            cond("a", op(Operator::Eq, "x,y")),
            cond("b", op(Operator::Eq, "\"q\"")),
            cond("c", op(Operator::Eq, "p)")),
            cond("d", op(Operator::Cs, "{1,2}")),
            cond("e", op(Operator::Eq, "")),
            cond("f", OpExpr { negated: false, operation: Operation::In(vec!["".into(), " s".into(), "a\"b".into()]) }),
        ],
    };
    assert_eq!(tree.value(), r#"(a.eq."x,y",b.eq."\"q\"",c.eq."p)",d.cs.{1,2},e.eq.,f.in.(""," s","a\"b"))"#);
    let q = ApiQuery { logic: vec![tree], ..ApiQuery::default() };
    assert_eq!(parse_query(&q.to_pairs()), Ok(q));
}

// ---------------------------------------------------------------------------------------------
// Prefer

#[test]
fn prefer_captured_examples() {
    let p = parse_prefer(["count=exact, missing=default, return=representation"]);
    assert_eq!(p.count, Some(PreferCount::Exact));
    assert_eq!(p.missing, Some(PreferMissing::Default));
    assert_eq!(p.return_, Some(PreferReturn::Representation));
    assert!(p.invalid.is_empty());
    assert_eq!(p.applied_header().as_deref(), Some("missing=default, return=representation, count=exact"));

    let p = parse_prefer(["return=representation,count=exact"]);
    assert_eq!((p.return_, p.count), (Some(PreferReturn::Representation), Some(PreferCount::Exact)));

    let p = parse_prefer(["resolution=ignore-duplicates, return=representation"]);
    assert_eq!(p.resolution, Some(PreferResolution::IgnoreDuplicates));

    let p = parse_prefer(["return=representation, handling=strict, max-affected=1"]);
    assert_eq!((p.handling, p.max_affected), (Some(PreferHandling::Strict), Some(1)));
    assert_eq!(p.check_strict(), Ok(()));
    assert_eq!(p.applied_header().as_deref(), Some("return=representation, handling=strict, max-affected=1"));

    let p = parse_prefer(["count=estimated, tx=rollback"]);
    assert_eq!((p.count, p.tx), (Some(PreferCount::Estimated), Some(PreferTx::Rollback)));
}

#[test]
fn prefer_first_occurrence_wins() {
    let p =
        parse_prefer(["return=minimal, return=representation", "count=planned", "count=exact,tx=commit,tx=rollback"]);
    assert_eq!(p.return_, Some(PreferReturn::Minimal));
    assert_eq!(p.count, Some(PreferCount::Planned));
    assert_eq!(p.tx, Some(PreferTx::Commit));
    assert!(p.invalid.is_empty());
    let p = parse_prefer(["return=bogus, return=headers-only", "timezone=UTC", "timezone=Europe/Paris"]);
    assert_eq!(p.return_, Some(PreferReturn::HeadersOnly));
    assert_eq!(p.timezone.as_deref(), Some("UTC"));
    assert_eq!(p.invalid, vec!["return=bogus".to_owned()]);
}

#[test]
fn prefer_applied_order_and_strict_handling() {
    let p = parse_prefer([
        "max-affected=5, timezone=UTC, handling=lenient, tx=commit, count=exact, return=minimal, missing=null, resolution=merge-duplicates",
    ]);
    assert_eq!(
        p.applied_header().as_deref(),
        Some(
            "resolution=merge-duplicates, missing=null, return=minimal, count=exact, tx=commit, handling=lenient, timezone=UTC"
        )
    );
    assert_eq!(parse_prefer([""]).applied_header(), None);

    let p = parse_prefer(["handling=strict, params=single-object, foo, max-affected=x"]);
    assert_eq!(p.invalid, vec!["params=single-object", "foo", "max-affected=x"]);
    let e = p.check_strict().expect_err("strict");
    assert_eq!((e.code, e.status()), ("PGRST122", 400));
    assert_eq!(e.message, "Invalid preferences given with handling=strict");
    assert_eq!(e.details.as_deref(), Some("Invalid preferences: params=single-object, foo, max-affected=x"));

    let lenient = parse_prefer(["foo, handling=lenient"]);
    assert_eq!(lenient.check_strict(), Ok(()));
    assert_eq!(parse_prefer(["foo"]).check_strict(), Ok(()));
    assert_eq!(
        parse_prefer(["  ,return=minimal ,, "]),
        Preferences { return_: Some(PreferReturn::Minimal), ..Preferences::default() }
    );
}

#[test]
fn parse_error_json_shape() {
    let e = err(&[("limit", "-1")]);
    assert_eq!(
        e.to_json(),
        serde_json::json!({
            "code": "PGRST103",
            "message": "Requested range not satisfiable",
            "details": "Limit should be greater than or equal to zero.",
            "hint": null,
        })
    );
}
