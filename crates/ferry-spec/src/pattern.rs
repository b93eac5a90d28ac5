//! Table patterns for `[tables] exclude`: `schema.table`, each part a glob (`*` any run of
//! characters, `?` exactly one), matched case-sensitively against the unquoted catalog names.
//! A pattern without a dot matches the table name in any schema. A part in double quotes is
//! taken literally (dots, `*` and `?` included; `""` is one quote): `"My.Schema"."T"`.

use std::fmt;

use ferry_model::TableName;

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("table pattern `{pattern}`: {reason}")]
pub struct PatternError {
    pattern: String,
    reason: String,
}

/// One validated table pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePattern {
    text: String,
    /// `None`: any schema.
    schema: Option<Glob>,
    table: Glob,
}

impl TablePattern {
    /// Parses `table`, `schema.table` or the quoted forms.
    pub fn parse(s: &str) -> Result<Self, PatternError> {
        let err = |reason: &str| PatternError {
            pattern: s.to_owned(),
            reason: reason.to_owned(),
        };
        if s.is_empty() {
            return Err(err(
                "is empty; write `schema.table` or `table`, with * and ? as wildcards",
            ));
        }
        let mut parts = Vec::new();
        let mut rest = s;
        loop {
            let (part, after) = split_part(rest).map_err(&err)?;
            parts.push(part);
            match after {
                None => break,
                Some(after) => rest = after,
            }
        }
        let mut parts = parts.into_iter();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(table), None, None) => Ok(Self {
                text: s.to_owned(),
                schema: None,
                table,
            }),
            (Some(schema), Some(table), None) => Ok(Self {
                text: s.to_owned(),
                schema: Some(schema),
                table,
            }),
            _ => Err(err(
                "has more than one dot; quote a part that holds a dot: \"My.Schema\".t",
            )),
        }
    }

    /// Whether `t` is covered by this pattern.
    pub fn matches(&self, t: &TableName) -> bool {
        self.schema.as_ref().is_none_or(|g| g.matches(&t.schema)) && self.table.matches(&t.name)
    }

    /// The pattern as written in the spec.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for TablePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Reads one part from the start of `s`; returns it and the text after the dot that ends it.
fn split_part(s: &str) -> Result<(Glob, Option<&str>), &'static str> {
    if let Some(quoted) = s.strip_prefix('"') {
        let mut literal = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '"' {
                literal.push(c);
                continue;
            }
            if quoted[i + 1..].starts_with('"') {
                literal.push('"');
                chars.next();
                continue;
            }
            if literal.is_empty() {
                return Err("has an empty quoted part");
            }
            let after = &quoted[i + 1..];
            let glob = Glob(literal.chars().map(Token::Char).collect());
            return match after.strip_prefix('.') {
                Some(next) => Ok((glob, Some(next))),
                None if after.is_empty() => Ok((glob, None)),
                None => Err("has text after a closing quote; a quoted part must be a whole part"),
            };
        }
        return Err("has a quote that is never closed");
    }
    let (part, after) = match s.split_once('.') {
        Some((part, after)) => (part, Some(after)),
        None => (s, None),
    };
    if part.is_empty() {
        return Err("has an empty part; write `schema.table` or `table`");
    }
    if part.contains('"') {
        return Err("has a quote inside a part; quote a whole part: \"My.Schema\".t");
    }
    if part.chars().any(char::is_whitespace) {
        return Err("has whitespace in an unquoted part; quote that part");
    }
    let glob = part
        .chars()
        .map(|c| match c {
            '*' => Token::Any,
            '?' => Token::One,
            c => Token::Char(c),
        })
        .collect();
    Ok((Glob(glob), after))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Char(char),
    One,
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Glob(Vec<Token>);

impl Glob {
    /// Classic wildcard matching with one backtrack point (the last `*`): linear-ish, no
    /// recursion, so no input can blow the stack.
    fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        let pat = &self.0;
        let (mut p, mut n) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            match pat.get(p) {
                Some(Token::Any) => {
                    star = Some((p, n));
                    p += 1;
                }
                Some(Token::One) => {
                    p += 1;
                    n += 1;
                }
                Some(Token::Char(c)) if name.get(n) == Some(c) => {
                    p += 1;
                    n += 1;
                }
                _ => match star {
                    Some((sp, sn)) => {
                        p = sp + 1;
                        n = sn + 1;
                        star = Some((sp, sn + 1));
                    }
                    None => return false,
                },
            }
        }
        pat.get(p..)
            .is_some_and(|rest| rest.iter().all(|t| *t == Token::Any))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(s: &str) -> TablePattern {
        TablePattern::parse(s).expect("valid pattern")
    }

    fn t(schema: &str, name: &str) -> TableName {
        TableName::new(schema, name)
    }

    #[test]
    fn globs_match_schema_and_table() {
        let p = pattern("public.audit_*");
        assert!(p.matches(&t("public", "audit_")));
        assert!(p.matches(&t("public", "audit_2024")));
        assert!(!p.matches(&t("public", "audit")));
        assert!(!p.matches(&t("app", "audit_x")));
        assert!(!p.matches(&t("public", "Audit_x")), "case-sensitive");

        let p = pattern("archive.*");
        assert!(p.matches(&t("archive", "anything")));
        assert!(!p.matches(&t("archive2", "x")));

        let p = pattern("tmp_?");
        assert!(p.matches(&t("public", "tmp_1")));
        assert!(p.matches(&t("other", "tmp_é")));
        assert!(!p.matches(&t("public", "tmp_12")));
        assert!(!p.matches(&t("public", "tmp_")));

        let p = pattern("*a*b?c*");
        assert!(p.matches(&t("s", "xxaxxbycxx")));
        assert!(p.matches(&t("s", "abxc")));
        assert!(!p.matches(&t("s", "abc")));
        assert!(pattern("*").matches(&t("s", "")));
        assert!(pattern("*.*").matches(&t("s", "t")));
    }

    #[test]
    fn quoted_parts_are_literal() {
        let p = pattern(r#""My.Schema"."T""#);
        assert!(p.matches(&t("My.Schema", "T")));
        assert!(!p.matches(&t("My.Schema", "t")));
        let p = pattern(r#""a*"."b""c""#);
        assert!(p.matches(&t("a*", "b\"c")));
        assert!(!p.matches(&t("ab", "b\"c")));
        let p = pattern(r#"s."x.y""#);
        assert!(p.matches(&t("s", "x.y")));
        assert_eq!(p.as_str(), r#"s."x.y""#);
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in [
            "", ".", "a.", ".a", "a..b", "a.b.c", "\"", "\"a", "\"\".t", "\"a\"b", "a\"b", "a b",
        ] {
            let e = TablePattern::parse(bad).expect_err(bad);
            assert!(e.to_string().starts_with("table pattern `"), "{e}");
        }
    }
}
