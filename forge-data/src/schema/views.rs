//! Which base-table column each view column comes from, read from the view's stored rule
//! (`pg_rewrite.ev_action`, Postgres's node-tree text), so views inherit the foreign keys of
//! their base tables as PostgREST's do.

/// One output column of a view: its name and, when it is a plain base-table column, that
/// column's table oid and attribute number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) name: String,
    pub(crate) table: u32,
    pub(crate) column: i16,
}

#[derive(Debug, PartialEq)]
enum Token<'a> {
    Open(char),
    Close,
    Word(&'a str),
}

fn tokenize(text: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'(' => {
                tokens.push(Token::Open(bytes[i] as char));
                i += 1;
            }
            b'}' | b')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            b' ' | b'\n' | b'\t' => i += 1,
            _ => {
                let start = i;
                while i < bytes.len() && !matches!(bytes[i], b' ' | b'\n' | b'\t' | b'{' | b'}' | b'(' | b')') {
                    // A backslash escapes the next character (names with spaces or brackets).
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                let end = i.min(bytes.len());
                if let Some(word) = text.get(start..end) {
                    tokens.push(Token::Word(word));
                }
            }
        }
    }
    tokens
}

fn unescape(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The index just past the node or list that starts at `i` (or past one word).
fn skip(tokens: &[Token<'_>], mut i: usize) -> usize {
    if !matches!(tokens.get(i), Some(Token::Open(_))) {
        return i + 1;
    }
    let mut depth = 0usize;
    while let Some(t) = tokens.get(i) {
        match t {
            Token::Open(_) => depth += 1,
            Token::Close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            Token::Word(_) => {}
        }
        i += 1;
    }
    i
}

/// The origins of the top-level query's output columns. Columns that are expressions, or
/// come through set operations, have no origin and are left out.
pub(crate) fn origins(ev_action: &str) -> Vec<Origin> {
    let tokens = tokenize(ev_action);
    // The rule's action list holds one QUERY node: walk its fields at its own level.
    let Some(start) = tokens.windows(2).position(|w| w[0] == Token::Open('{') && w[1] == Token::Word("QUERY")) else {
        return Vec::new();
    };
    let end = skip(&tokens, start);
    let mut i = start + 2;
    while i < end.saturating_sub(1) {
        match tokens[i] {
            Token::Word(":targetList") => return target_entries(&tokens, i + 1),
            Token::Word(w) if w.starts_with(':') => i = skip(&tokens, i + 1),
            _ => i += 1,
        }
    }
    Vec::new()
}

fn target_entries(tokens: &[Token<'_>], list: usize) -> Vec<Origin> {
    let mut out = Vec::new();
    if tokens.get(list) != Some(&Token::Open('(')) {
        return out;
    }
    let end = skip(tokens, list);
    let mut i = list + 1;
    while i < end.saturating_sub(1) {
        let entry_end = skip(tokens, i);
        if tokens.get(i) == Some(&Token::Open('{')) && tokens.get(i + 1) == Some(&Token::Word("TARGETENTRY")) {
            let (mut name, mut table, mut column, mut junk) = (None, 0u32, 0i16, false);
            let mut j = i + 2;
            while j < entry_end.saturating_sub(1) {
                match (&tokens[j], tokens.get(j + 1)) {
                    (Token::Word(":resname"), Some(Token::Word(v))) => name = Some(unescape(v)),
                    (Token::Word(":resorigtbl"), Some(Token::Word(v))) => table = v.parse().unwrap_or(0),
                    (Token::Word(":resorigcol"), Some(Token::Word(v))) => column = v.parse().unwrap_or(0),
                    (Token::Word(":resjunk"), Some(Token::Word(v))) => junk = *v == "true",
                    _ => {}
                }
                j = match tokens[j] {
                    Token::Word(w) if w.starts_with(':') => skip(tokens, j + 1),
                    _ => j + 1,
                };
            }
            if let (Some(name), false) = (name, junk)
                && table != 0
                && column > 0
            {
                out.push(Origin { name, table, column });
            }
        }
        i = entry_end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_top_level_target_list_only() {
        // Abridged from a real PG 15 rule: a subquery in the range table has its own
        // target list, which must not be mistaken for the view's.
        let rule = r#"({QUERY :commandType 1 :rtable ({RANGETBLENTRY :subquery {QUERY :targetList ({TARGETENTRY :expr {VAR :varno 1} :resno 1 :resname inner :resorigtbl 999 :resorigcol 9 :resjunk false})} :eref {ALIAS :aliasname x :colnames ("a" "b")}}) :jointree {FROMEXPR :fromlist ({RANGETBLREF :rtindex 1}) :quals <>} :targetList ({TARGETENTRY :expr {VAR :varno 1 :varattno 1} :resno 1 :resname id :ressortgroupref 0 :resorigtbl 16385 :resorigcol 1 :resjunk false} {TARGETENTRY :expr {VAR :varno 1 :varattno 3} :resno 2 :resname author\ id :ressortgroupref 0 :resorigtbl 16385 :resorigcol 3 :resjunk false} {TARGETENTRY :expr {OPEXPR :opno 551} :resno 3 :resname total :resorigtbl 0 :resorigcol 0 :resjunk false} {TARGETENTRY :expr {VAR :varno 1 :varattno 2} :resno 4 :resname hidden :resorigtbl 16385 :resorigcol 2 :resjunk true}) :override 0})"#;
        assert_eq!(
            origins(rule),
            vec![
                Origin { name: "id".into(), table: 16385, column: 1 },
                Origin { name: "author id".into(), table: 16385, column: 3 },
            ]
        );
    }

    #[test]
    fn garbage_yields_nothing_and_never_panics() {
        for text in
            ["", "(", "({QUERY", "({QUERY :targetList (", "({QUERY :targetList ({TARGETENTRY :resname", "\\", "}}})))"]
        {
            assert!(origins(text).is_empty(), "{text}");
        }
    }
}
