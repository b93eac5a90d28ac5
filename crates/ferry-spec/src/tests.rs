use std::path::Path;
use std::time::Duration;

use ferry_model::{TableName, WithoutIdentity};

use super::*;

const EXAMPLE: &str = r#"name = "billing"                 # the migration's identity
mode = "logical"
[source]
dsn = "host=127.0.0.1 port=5432 dbname=billing user=ferry"
password_env = "BILLING_SOURCE_PASSWORD"
[target]
dsn = "host=127.0.0.1 port=5433 dbname=billing user=ferry"
[copy]
jobs = 4
split_tables_larger_than = "1GB"
missing_roles = "refuse"
snapshot_hold_timeout = "30min"
[tables]
without_identity = "refuse"
exclude = ["public.audit_*", "archive.*", "tmp_?"]
"#;

const MINIMAL: &str = r#"name = "billing"
[source]
dsn = "host=a"
[target]
dsn = "host=b"
"#;

fn plan(text: &str) -> Plan {
    match parse(text, Path::new("specs/billing.toml"), None) {
        Ok(plan) => plan,
        Err(e) => panic!("{e}"),
    }
}

/// The rendered error, which must be a list of problems.
fn error(text: &str) -> String {
    match parse(text, Path::new("billing.toml"), None) {
        Ok(plan) => panic!("parsed: {plan:?}"),
        Err(e @ SpecError::Invalid { .. }) => e.to_string(),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// `MINIMAL` with one line replaced or appended.
fn with(find: &str, replace: &str) -> String {
    if find.is_empty() {
        format!("{MINIMAL}{replace}\n")
    } else {
        MINIMAL.replacen(find, replace, 1)
    }
}

#[test]
fn example_parses() {
    let p = plan(EXAMPLE);
    assert_eq!(p.name, "billing");
    assert_eq!(p.mode, Mode::Logical);
    assert_eq!(p.source.conninfo.identity(), "ferry@127.0.0.1:5432/billing");
    assert_eq!(
        p.source.password_env.as_deref(),
        Some("BILLING_SOURCE_PASSWORD")
    );
    assert_eq!(p.target.conninfo.port(), 5433);
    assert_eq!(p.target.password_env, None);
    assert_eq!(p.copy.jobs, 4);
    assert_eq!(p.copy.split_tables_larger_than, Some(1 << 30));
    assert_eq!(p.copy.missing_roles, MissingRoles::Refuse);
    assert_eq!(p.copy.snapshot_hold_timeout, Duration::from_secs(1800));
    assert_eq!(p.tables.without_identity, WithoutIdentity::Refuse);
    let patterns: Vec<&str> = p.tables.exclude.iter().map(TablePattern::as_str).collect();
    assert_eq!(patterns, ["public.audit_*", "archive.*", "tmp_?"]);
    assert!(p.tables.exclude[0].matches(&TableName::new("public", "audit_log")));
    assert_eq!(p.spec_path, Path::new("specs/billing.toml"));
    assert_eq!(p.state_dir, Path::new("specs/.ferry/billing"));
}

#[test]
fn defaults_and_state_dir() {
    let p = plan(MINIMAL);
    assert_eq!(p.mode, Mode::Logical);
    assert!((1..=256).contains(&p.copy.jobs));
    assert_eq!(p.copy.split_tables_larger_than, None);
    assert_eq!(p.copy.max_spool, 64 << 30);
    assert_eq!(p.copy.snapshot_hold_timeout, Duration::from_secs(1800));
    assert_eq!(p.copy.missing_roles, MissingRoles::Refuse);
    assert!(p.tables.exclude.is_empty());
    assert_eq!(
        p.sync,
        SyncSettings {
            max_lag: Duration::from_secs(1),
            sustained: Duration::from_secs(30),
            max_retained_wal: None,
        }
    );
    assert_eq!(p.cutover.approval, Approval::Manual);
    assert_eq!(p.cutover.drain_timeout, Duration::from_secs(10));
    assert_eq!(p.cutover.final_validation, FinalValidation::Off);

    let p = parse(MINIMAL, Path::new("billing.toml"), None).expect("valid");
    assert_eq!(p.state_dir, Path::new("./.ferry/billing"));
    let p = parse(
        MINIMAL,
        Path::new("billing.toml"),
        Some(Path::new("/var/lib/ferry")),
    )
    .expect("valid");
    assert_eq!(p.state_dir, Path::new("/var/lib/ferry"));
}

#[test]
fn other_values_parse() {
    let p = plan(&with(
        "name = \"billing\"",
        "name = \"b-1_x\"\nmode = \"physical\"",
    ));
    assert_eq!(
        (p.name.as_str(), p.mode.to_string()),
        ("b-1_x", "physical".to_owned())
    );
    let p = plan(&with(
        "",
        "[copy]\nsplit_tables_larger_than = 1048576\nmissing_roles = \"create\"\n\
         snapshot_hold_timeout = \"7d\"\nmax_spool = \"2GB\"\n\
         [tables]\nwithout_identity = \"append_only\"",
    ));
    assert_eq!(p.copy.max_spool, 2 << 30);
    assert_eq!(p.copy.split_tables_larger_than, Some(1 << 20));
    assert_eq!(p.copy.missing_roles, MissingRoles::Create);
    assert_eq!(p.copy.snapshot_hold_timeout, Duration::from_secs(7 * 86400));
    assert_eq!(p.tables.without_identity, WithoutIdentity::AppendOnly);
    let p = plan(&with(
        "",
        "[sync]\nmax_lag = \"500ms\"\nsustained = \"2min\"\nmax_retained_wal = \"50GB\"\n\
         [cutover]\napproval = \"auto\"\nquiesce = \"source\"\ndrain_timeout = \"0s\"\n\
         final_validation = \"changed\"\nfinal_validation_budget = \"1min\"",
    ));
    assert_eq!(p.sync.max_lag, Duration::from_millis(500));
    assert_eq!(p.sync.sustained, Duration::from_secs(120));
    assert_eq!(p.sync.max_retained_wal, Some(50 << 30));
    assert_eq!(p.cutover.approval, Approval::Auto);
    assert_eq!(p.cutover.drain_timeout, Duration::ZERO);
    assert_eq!(p.cutover.final_validation, FinalValidation::Changed);
    assert_eq!(p.cutover.final_validation_budget, Duration::from_secs(60));
}

#[test]
fn unknown_keys_name_line_and_key() {
    let e = error(&with("[source]", "nmae = \"x\"\n[source]"));
    assert!(
        e.starts_with("billing.toml line 2: nmae: unknown key; expected one of"),
        "{e}"
    );
    let e = error(&with("", "[copy]\njobs = 2\nworkers = 3"));
    assert!(
        e.starts_with("billing.toml line 8: [copy] workers: unknown key; expected"),
        "{e}"
    );
    let e = error(&with("", "[copyy]"));
    assert!(
        e.starts_with("billing.toml line 6: copyy: unknown key"),
        "{e}"
    );
    let e = error(&with(
        "dsn = \"host=a\"",
        "dsn = \"host=a\"\npassword = \"hunter2\"",
    ));
    assert!(
        e.starts_with("billing.toml line 4: [source] password: unknown key; secrets"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn wrong_type_names_line_and_key() {
    let e = error(&with("", "[copy]\njobs = \"four\""));
    assert_eq!(
        e,
        "billing.toml line 7: [copy] jobs: expected an integer, found a string"
    );
    let e = error(&with("", "[tables]\nexclude = \"public.*\""));
    assert_eq!(
        e,
        "billing.toml line 7: [tables] exclude: expected a sequence, found a string"
    );
    let e = error("name = \"x\"\nsource = 5\n");
    assert_eq!(
        e,
        "billing.toml line 2: source: expected a table, found integer `5`"
    );
}

#[test]
fn syntax_error_has_a_line_and_no_source_text() {
    let e = error(&with("dsn = \"host=b\"", "dsn = \"host=b password=hunter2"));
    assert!(e.starts_with("billing.toml line 5: "), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn bad_values_name_line_and_key() {
    let cases = [
        ("[copy]\njobs = 0", "line 7: [copy] jobs: must be between 1 and 256 (found 0)"),
        ("[copy]\njobs = 257", "line 7: [copy] jobs: must be between 1 and 256 (found 257)"),
        ("[copy]\nsplit_tables_larger_than = \"1XB\"", "line 7: [copy] split_tables_larger_than: `XB` is not a size unit"),
        ("[copy]\nsplit_tables_larger_than = \"512kB\"", "line 7: [copy] split_tables_larger_than: must be at least 1MB"),
        ("[copy]\nsplit_tables_larger_than = -5", "line 7: [copy] split_tables_larger_than: `-5` is negative"),
        ("[copy]\nmax_spool = \"100kB\"", "line 7: [copy] max_spool: must be at least 1MB"),
        ("[copy]\nmax_spool = true", "line 7: [copy] max_spool: expected a size like \"1GB\", found a boolean"),
        ("[copy]\nmissing_roles = \"maybe\"", "line 7: [copy] missing_roles: `maybe` is not one of refuse, create"),
        ("[copy]\nsnapshot_hold_timeout = \"10s\"", "line 7: [copy] snapshot_hold_timeout: must be between 1min and 7d (found 10s)"),
        ("[copy]\nsnapshot_hold_timeout = \"30\"", "line 7: [copy] snapshot_hold_timeout: `30` has no unit"),
        ("[sync]\nmax_lag = \"5ms\"", "line 7: [sync] max_lag: must be between 10ms and 1h (found 5ms)"),
        ("[sync]\nsustained = \"soon\"", "line 7: [sync] sustained: "),
        ("[sync]\nmax_retained_wal = \"10kB\"", "line 7: [sync] max_retained_wal: must be at least 1MB"),
        ("[sync]\nlag = \"1s\"", "line 7: [sync] lag: unknown key; expected one of `max_lag`"),
        ("[cutover]\napproval = \"yes\"", "line 7: [cutover] approval: `yes` is not one of manual, auto"),
        ("[cutover]\nquiesce = \"proxy\"", "line 7: [cutover] quiesce: `proxy` is not one of source"),
        ("[cutover]\ndrain_timeout = \"2h\"", "line 7: [cutover] drain_timeout: must be between 0ms and 1h (found 2h)"),
        ("[cutover]\nfinal_validation = \"all\"", "line 7: [cutover] final_validation: `all` is not one of off, changed"),
        ("[tables]\nwithout_identity = \"ignore\"", "line 7: [tables] without_identity: `ignore` is not one of refuse, exclude, append_only"),
        ("[tables]\nexclude = [\n  \"ok.*\",\n  \"a.b.c\",\n]", "line 9: [tables] exclude: table pattern `a.b.c`: has more than one dot"),
    ];
    for (append, expected) in cases {
        let e = error(&with("", append));
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(
            e.starts_with(&format!("billing.toml {expected}")),
            "{append}\n{e}"
        );
    }
    let e = error(&with("[source]", "mode = \"fast\"\n[source]"));
    assert!(e.starts_with("billing.toml line 2: mode: `fast` is not one of logical, physical"));
    let e = error(&with("name = \"billing\"", "name = \"Billing!\""));
    assert!(
        e.starts_with("billing.toml line 1: name: `Billing!` is not a migration name"),
        "{e}"
    );
    let e = error(&with(
        "name = \"billing\"",
        &format!("name = \"{}\"", "a".repeat(49)),
    ));
    assert!(e.contains("line 1: name:"), "{e}");
}

#[test]
fn dsn_problems_are_reported_at_the_dsn_without_its_text() {
    let e = error(&with(
        "dsn = \"host=b\"",
        "dsn = \"host=b password=hunter2\"",
    ));
    assert_eq!(
        e,
        "billing.toml line 5: [target] dsn: the dsn holds a password; secrets never live in \
         the spec: remove it and set password_env (or PGPASSWORD, ~/.pgpass)"
    );
    let e = error(&with(
        "dsn = \"host=a\"",
        "dsn = \"postgres://u:hunter2@a/db\"",
    ));
    assert!(
        e.starts_with("billing.toml line 3: [source] dsn: the dsn holds a password"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "{e}");
    let e = error(&with(
        "dsn = \"host=a\"",
        "dsn = \"host=a sslmodee=require\"",
    ));
    assert!(
        e.starts_with("billing.toml line 3: [source] dsn: unknown connection parameter `sslmodee`"),
        "{e}"
    );
    let e = error(&with(
        "dsn = \"host=a\"",
        "dsn = \"host=a\"\npassword_env = \"s3cr3t!\"",
    ));
    assert!(
        e.starts_with("billing.toml line 4: [source] password_env: must be the NAME"),
        "{e}"
    );
    assert!(!e.contains("s3cr3t"), "{e}");
}

#[test]
fn missing_keys_are_reported() {
    let e = error("mode = \"logical\"\n[source]\npassword_env = \"X\"\n");
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 3, "{e}");
    assert!(lines
        .contains(&"billing.toml: name: required; name the migration, like name = \"billing\""));
    assert!(lines.contains(&"billing.toml: [target]: required; add the table with its dsn"));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("billing.toml line 2: [source] dsn: required")),
        "{e}"
    );
}

#[test]
fn all_value_problems_are_gathered_in_line_order() {
    let text = "name = \"Bad Name\"\nmode = \"x\"\n[source]\ndsn = \"host=a port=0\"\n\
                [target]\ndsn = \"bogus=1\"\n[copy]\njobs = 0\nsplit_tables_larger_than = \"1XB\"\n\
                [tables]\nexclude = [\"\"]\n";
    let e = error(text);
    let lines: Vec<usize> = e
        .lines()
        .map(|l| {
            let rest = l.strip_prefix("billing.toml line ").expect("located");
            rest.split(':')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("line number")
        })
        .collect();
    assert_eq!(lines, [1, 2, 4, 6, 8, 9, 11], "{e}");
}

#[test]
fn load_reads_the_file_and_reports_a_missing_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("billing.toml");
    std::fs::write(&path, EXAMPLE).expect("write spec");
    let p = load(&path, None).expect("valid spec");
    assert_eq!(p.state_dir, dir.path().join(".ferry/billing"));
    std::fs::remove_file(&path).expect("cleanup");
    let e = load(&path, None).expect_err("gone");
    assert!(matches!(e, SpecError::Read { .. }));
    assert!(e.to_string().starts_with("cannot read the spec "), "{e}");
}
