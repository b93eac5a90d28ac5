//! Bad input to the `ferry` binary, run as a subprocess against real clusters: every mistake
//! an operator can make in a spec, an endpoint or a server's settings must be refused with one
//! clear message saying what is wrong and what to do, a non-zero exit, no panic, no bare
//! driver error, never a password or a full dsn (in the output or the state directory), and
//! nothing half-made on either server.
//!
//! Here: unreachable servers, missing databases, malformed specs and impossible TLS settings.
//! Elsewhere in `bad_input/`: passwords over SCRAM (`passwords.rs`), the source's settings and
//! the client tools (`source.rs`), the target and the tables (`tables.rs`), commands on a
//! migration that never ran, is running or failed halfway (`lifecycle.rs`); the shared checks
//! are in `support.rs`.

#[path = "bad_input/support.rs"]
mod support;

#[path = "bad_input/lifecycle.rs"]
mod lifecycle;
#[path = "bad_input/passwords.rs"]
mod passwords;
#[path = "bad_input/source.rs"]
mod source;
#[path = "bad_input/tables.rs"]
mod tables;

use ferry_testkit::{cluster, TestDb};
use support::{
    assert_source_untouched, assert_target_empty, closed_port, path_str, seed, Side, Workdir,
    PASSWORD_VAR,
};

/// A closed port on 127.0.0.1 for either side: refused, naming the side, the address and what
/// to check; nothing left on the side that was reachable.
#[tokio::test]
async fn unreachable_host_is_refused() {
    let db = TestDb::create(cluster()).await;
    seed(&db.conninfo()).await;
    let target = TestDb::create(cluster()).await;
    let port = closed_port();
    let dead = format!("host=127.0.0.1 port={port} dbname=app user=app");
    let work = Workdir::new();

    let spec = work.spec(
        "unreachable_source",
        &Side::new(&dead).with_password_env(PASSWORD_VAR),
        &Side::new(target.conninfo()),
        "",
    );
    for cmd in ["check", "copy"] {
        work.ferry(&[cmd, path_str(&spec)])
            .await
            .assert_refused(
                &[
                    "cannot connect to the source",
                    &format!("127.0.0.1:{port}"),
                    "connection refused",
                    "check host and port",
                ],
                &[&dead],
            )
            .assert_short(2);
    }
    assert_target_empty(&target.conninfo()).await;
    work.assert_not_started(&spec).await;

    let spec = work.spec(
        "unreachable_target",
        &Side::new(db.conninfo()),
        &Side::new(&dead).with_password_env(PASSWORD_VAR),
        "",
    );
    for cmd in ["check", "copy"] {
        work.ferry(&[cmd, path_str(&spec)]).await.assert_refused(
            &["cannot connect to the target", "connection refused"],
            &[&dead],
        );
    }
    assert_source_untouched(&db.conninfo()).await;
    work.assert_not_started(&spec).await;
    work.assert_state_has_no_secret(&[&dead]);
}

/// A host name that does not resolve: said so, not a resolver's error code.
#[tokio::test]
async fn unresolvable_host_is_refused() {
    let target = TestDb::create(cluster()).await;
    let work = Workdir::new();
    let dsn = "host=no-such-host.invalid port=5432 dbname=app user=app connect_timeout=5";
    let spec = work.spec(
        "unresolvable",
        &Side::new(dsn),
        &Side::new(target.conninfo()),
        "",
    );
    work.ferry(&["check", path_str(&spec)])
        .await
        .assert_refused(&["no-such-host.invalid", "does not resolve"], &[dsn]);
    assert_target_empty(&target.conninfo()).await;
}

/// A dbname that does not exist on either side: refused with the name and the fix.
#[tokio::test]
async fn missing_database_is_refused() {
    let source = TestDb::create(cluster()).await;
    seed(&source.conninfo()).await;
    let target = TestDb::create(cluster()).await;
    let missing = cluster().conninfo("no_such_db_for_ferry");
    let work = Workdir::new();

    let spec = work.spec(
        "missing_source_db",
        &Side::new(&missing),
        &Side::new(target.conninfo()),
        "",
    );
    for cmd in ["check", "copy"] {
        work.ferry(&[cmd, path_str(&spec)])
            .await
            .assert_refused(
                &[
                    "cannot connect to the source",
                    "database \"no_such_db_for_ferry\" does not exist",
                    "create it first or fix dbname",
                ],
                &[&missing],
            )
            .assert_short(2);
    }
    assert_target_empty(&target.conninfo()).await;

    let spec = work.spec(
        "missing_target_db",
        &Side::new(source.conninfo()),
        &Side::new(&missing),
        "",
    );
    for cmd in ["check", "copy"] {
        work.ferry(&[cmd, path_str(&spec)]).await.assert_refused(
            &[
                "cannot connect to the target",
                "\"no_such_db_for_ferry\" does not exist",
            ],
            &[&missing],
        );
    }
    assert_source_untouched(&source.conninfo()).await;
    work.assert_not_started(&spec).await;
    work.assert_state_has_no_secret(&[&missing]);
}

/// Malformed specs: each error names the file, the line and the key, never repeats a secret,
/// and nothing is created anywhere: not on the servers, not even the state directory.
#[tokio::test]
async fn malformed_specs_are_refused_before_anything_is_created() {
    let source = TestDb::create(cluster()).await;
    seed(&source.conninfo()).await;
    let target = TestDb::create(cluster()).await;
    let (src, dst) = (source.conninfo(), target.conninfo());
    let head = format!("name = \"bad\"\n[source]\ndsn = {src:?}\n[target]\ndsn = {dst:?}\n");
    let work = Workdir::new();

    // (file, text, what the message must say)
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "unknown_key.toml",
            format!("{head}[copy]\njobz = 4\n"),
            vec![
                "unknown_key.toml line 7",
                "[copy] jobz",
                "unknown key",
                "`jobs`",
            ],
        ),
        (
            "unknown_table.toml",
            format!("{head}[cutovr]\napproval = \"auto\"\n"),
            vec!["unknown_table.toml line 6", "cutovr", "unknown key"],
        ),
        (
            "wrong_type.toml",
            format!("{head}[copy]\njobs = \"four\"\n"),
            vec![
                "wrong_type.toml line 7",
                "[copy] jobs",
                "expected an integer",
            ],
        ),
        (
            "wrong_type_table.toml",
            format!("name = \"bad\"\nsource = {src:?}\n[target]\ndsn = {dst:?}\n"),
            vec!["wrong_type_table.toml line 2", "source", "expected a table"],
        ),
        (
            "bad_value.toml",
            format!("{head}[copy]\njobs = 0\n[tables]\nwithout_identity = \"sometimes\"\n"),
            vec![
                "bad_value.toml line 7: [copy] jobs",
                "between 1 and 256",
                "bad_value.toml line 9: [tables] without_identity",
                "refuse, exclude, append_only",
            ],
        ),
        (
            "bad_name.toml",
            format!("name = \"Bad Name!\"\n[source]\ndsn = {src:?}\n[target]\ndsn = {dst:?}\n"),
            vec!["bad_name.toml line 1", "name"],
        ),
        (
            "bad_size.toml",
            format!("{head}[copy]\nsplit_tables_larger_than = \"lots\"\n"),
            vec!["bad_size.toml line 7", "[copy] split_tables_larger_than"],
        ),
        (
            "syntax.toml",
            format!("name = \"bad\"\n[source\ndsn = {src:?}\n"),
            vec!["syntax.toml line 2", "expected `]`"],
        ),
        (
            "missing_target.toml",
            format!("name = \"bad\"\n[source]\ndsn = {src:?}\n"),
            vec!["missing_target.toml", "target"],
        ),
        (
            "password_in_dsn.toml",
            format!(
                "name = \"bad\"\n[source]\ndsn = \"{src} password={}\"\n\
                 [target]\ndsn = \"postgresql://postgres:{}@127.0.0.1:5432/x\"\n",
                support::PASSWORD,
                support::PASSWORD
            ),
            vec![
                "password_in_dsn.toml line 3: [source] dsn",
                "password_in_dsn.toml line 5: [target] dsn",
                "secrets never live in the spec",
                "password_env",
            ],
        ),
        (
            "password_key.toml",
            format!("{head}password = \"{}\"\n", support::PASSWORD),
            vec![
                "password_key.toml line 6",
                "[target] password",
                "secrets never live in the spec",
                "password_env",
            ],
        ),
        (
            "password_as_password_env.toml",
            format!(
                "name = \"bad\"\n[source]\ndsn = {src:?}\npassword_env = \"{}\"\n\
                 [target]\ndsn = {dst:?}\n",
                support::PASSWORD
            ),
            vec![
                "password_as_password_env.toml line 4",
                "[source] password_env",
                "NAME of an environment variable",
            ],
        ),
    ];
    for (file, text, phrases) in &cases {
        let spec = work.write(file, text);
        for cmd in ["check", "copy", "status", "abort"] {
            work.ferry(&[cmd, path_str(&spec)])
                .await
                .assert_refused(phrases, &[])
                .assert_short(4);
        }
    }
    let missing = work.path().join("no_such_spec.toml");
    work.ferry(&["copy", path_str(&missing)])
        .await
        .assert_refused(
            &[
                "cannot read the spec",
                "no_such_spec.toml",
                "check the path",
            ],
            &[],
        );

    assert!(
        !work.state_root().exists(),
        "a refused spec created {}",
        work.state_root().display()
    );
    assert_source_untouched(&src).await;
    assert_target_empty(&dst).await;
}

/// TLS settings that cannot work: said in words (never OpenSSL's raw error stack), before any
/// connection is made where possible.
#[tokio::test]
async fn impossible_tls_settings_are_refused() {
    let source = TestDb::create(cluster()).await;
    seed(&source.conninfo()).await;
    let target = TestDb::create(cluster()).await;
    let (src, dst) = (source.conninfo(), target.conninfo());
    let work = Workdir::new();
    let not_pem = work.write("not-a-cert.pem", "this is not a certificate\n");
    let raw_openssl = ["error:0", "crypto/", ".c:"];

    let cases = [
        (
            "tls_required",
            format!("{src} sslmode=require"),
            vec![
                "source",
                "does not offer TLS but sslmode requires it",
                "lower sslmode",
            ],
        ),
        (
            "missing_root_cert",
            format!("{src} sslmode=verify-full sslrootcert=/nonexistent/root.crt"),
            vec![
                "cannot read sslrootcert /nonexistent/root.crt",
                "No such file or directory",
                "fix sslrootcert in the dsn",
            ],
        ),
        (
            "bad_root_cert",
            format!("{src} sslmode=verify-ca sslrootcert={}", not_pem.display()),
            vec!["sslrootcert", "is not usable", "PEM file"],
        ),
        (
            "bad_client_key",
            format!("{src} sslmode=require sslkey={}", not_pem.display()),
            vec!["sslkey", "is not usable", "private key"],
        ),
    ];
    for (name, dsn, phrases) in &cases {
        let spec = work.spec(name, &Side::new(dsn), &Side::new(&dst), "");
        let run = work.ferry(&["copy", path_str(&spec)]).await;
        run.assert_refused(phrases, &[dsn]).assert_short(2);
        for raw in raw_openssl {
            assert!(
                !run.stderr.contains(raw),
                "raw OpenSSL error: {}",
                run.stderr
            );
        }
    }
    assert_source_untouched(&src).await;
    assert_target_empty(&dst).await;
}
