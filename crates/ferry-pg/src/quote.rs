//! The one place identifiers and literals are quoted. No SQL in Ferry is built by pasting
//! user or catalog text any other way.

use ferry_model::TableName;
use postgres_protocol::escape::{escape_identifier, escape_literal};

/// `"name"`, with embedded quotes doubled.
pub fn ident(name: &str) -> String {
    escape_identifier(name)
}

/// `'text'` (or ` E'…'` when it holds backslashes).
pub fn literal(text: &str) -> String {
    escape_literal(text)
}

/// `"schema"."table"`.
pub fn table(t: &TableName) -> String {
    format!("{}.{}", ident(&t.schema), ident(&t.name))
}

/// A comma-separated list of quoted identifiers.
pub fn ident_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names.into_iter().map(ident).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_hostile_names() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(
            table(&TableName::new("Sch ema", "select")),
            "\"Sch ema\".\"select\""
        );
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(ident_list(["a", "B"]), "\"a\", \"B\"");
    }
}
