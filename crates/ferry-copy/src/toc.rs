//! The table of contents of a custom-format dump, as `pg_restore -l` prints it, and the
//! split of its post-data entries into per-table batches (built as soon as that table's data
//! is in) and a final batch (foreign keys, materialized views, everything else).

/// One line of `pg_restore -l`: `<dump id>; <catalog oid> <object oid> <desc> <rest…>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocEntry {
    pub line: String,
    pub catalog_oid: u32,
    pub object_oid: u32,
    /// The text after the two OIDs: the entry's kind followed by its names and owner.
    pub rest: String,
}

impl TocEntry {
    fn parse(line: &str) -> Option<TocEntry> {
        let (id, tail) = line.split_once(';')?;
        id.trim().parse::<u32>().ok()?;
        let mut words = tail.split_whitespace();
        let catalog_oid = words.next()?.parse().ok()?;
        let object_oid = words.next()?.parse().ok()?;
        let rest = words.collect::<Vec<_>>().join(" ");
        Some(TocEntry {
            line: line.to_owned(),
            catalog_oid,
            object_oid,
            rest,
        })
    }

    /// Whether the entry is of this kind (`"INDEX"` does not match `"INDEX ATTACH"`).
    pub fn is(&self, kind: &str) -> bool {
        self.rest
            .strip_prefix(kind)
            .is_some_and(|after| after.starts_with(' '))
            && !(kind == "INDEX" && self.rest.starts_with("INDEX ATTACH"))
            && !(kind == "CONSTRAINT" && self.rest.starts_with("CONSTRAINT TRIGGER"))
    }

    /// Entries that belong to one table and can be built as soon as its data is in.
    pub fn is_per_table_kind(&self) -> bool {
        matches!(self.catalog_oid, 1259 | 2606 | 2620 | 3256 | 2618)
            && (self.is("INDEX")
                || self.is("CONSTRAINT")
                || self.is("TRIGGER")
                || self.is("POLICY")
                || self.is("RULE"))
    }

    /// True for Ferry's own publications, which must never reach the target.
    pub fn is_publication_of(&self, publications: &[String]) -> bool {
        self.rest.starts_with("PUBLICATION")
            && self
                .rest
                .split_whitespace()
                .any(|w| publications.iter().any(|p| p == w))
    }
}

/// Every entry of a `pg_restore -l` listing (comment lines skipped).
pub fn parse_listing(text: &str) -> Vec<TocEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with(';'))
        .filter_map(TocEntry::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = "\
;
; Archive created at 2026-11-22 17:00:00 UTC
215; 1259 16386 TABLE public pgbench_accounts postgres
3200; 2606 16410 CONSTRAINT public pgbench_accounts pgbench_accounts_pkey postgres
3199; 1259 16420 INDEX public idx_a postgres
3198; 0 0 INDEX ATTACH public idx_part_1 postgres
3201; 2606 16412 FK CONSTRAINT public t1 t1_fk postgres
3202; 2620 16430 TRIGGER public t1 trg postgres
3203; 6104 16440 PUBLICATION - ferry_billing postgres
3204; 6106 16441 PUBLICATION TABLE public ferry_billing pgbench_accounts postgres
3205; 0 16450 MATERIALIZED VIEW DATA public mv postgres
";

    #[test]
    fn parses_and_classifies_entries() {
        let entries = parse_listing(LISTING);
        assert_eq!(entries.len(), 9);
        let kinds: Vec<bool> = entries.iter().map(TocEntry::is_per_table_kind).collect();
        assert_eq!(
            kinds,
            [false, true, true, false, false, true, false, false, false]
        );
        assert!(entries[4].is("FK CONSTRAINT"));
        assert!(!entries[3].is("INDEX"));
        let ours = ["ferry_billing".to_owned()];
        let pubs: Vec<bool> = entries.iter().map(|e| e.is_publication_of(&ours)).collect();
        assert_eq!(pubs.iter().filter(|p| **p).count(), 2);
        assert_eq!(entries[1].object_oid, 16410);
    }

    #[test]
    fn ignores_garbage_lines() {
        assert!(parse_listing("nonsense\n12; x y Z\n;comment\n").is_empty());
    }
}
