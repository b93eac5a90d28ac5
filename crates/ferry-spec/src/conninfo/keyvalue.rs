//! libpq's `key=value` syntax: `host=db1 port=5432 options='-c search_path=app'`.
//! Values may be single-quoted; inside or outside quotes a backslash escapes the next
//! character (`\'`, `\\`). Whitespace around `=` is allowed.

use super::ConnInfoError;

pub(super) fn parse(s: &str) -> Result<Vec<(String, String)>, ConnInfoError> {
    let mut pairs = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            // A stray word may be a password pasted without its key: only a parameter's
            // name is repeated.
            let known = super::KNOWN_KEYS.contains(&key.as_str())
                || super::SECRET_KEYS.contains(&key.as_str());
            let after = if known {
                format!("`{key}`")
            } else {
                "a word that is not a connection parameter (not repeated here in case it is a \
                 secret)"
                    .to_owned()
            };
            return Err(ConnInfoError::new(format!(
                "expected `=` after {after}; write key=value pairs separated by spaces"
            )));
        }
        if key.is_empty() {
            return Err(ConnInfoError::new("a `=` has no key before it"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '\'' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(ConnInfoError::new(format!(
                    "the quoted value of `{}` has no closing quote",
                    key.escape_debug()
                )));
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}
