//! The names Ferry gives the objects it creates on the source, derived from the migration's
//! name (`[a-z0-9_-]+`, validated by the spec), so `ferry abort` finds them with no state.

/// Ferry's logical replication slot: `ferry_<name>` with `-` as `_` (slot names allow only
/// lower-case letters, digits and underscores).
pub fn slot(migration: &str) -> String {
    format!("ferry_{}", migration.replace('-', "_"))
}

/// The publication of tables streamed with every change.
pub fn publication(migration: &str) -> String {
    slot(migration)
}

/// The publication of `append_only` tables (INSERT and TRUNCATE only).
pub fn append_only_publication(migration: &str) -> String {
    format!("{}_append", slot(migration))
}

/// Both publications, in the order the stream names them.
pub fn publications(migration: &str) -> Vec<String> {
    vec![publication(migration), append_only_publication(migration)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_slot_names() {
        assert_eq!(slot("billing-eu"), "ferry_billing_eu");
        assert_eq!(append_only_publication("b"), "ferry_b_append");
    }
}
