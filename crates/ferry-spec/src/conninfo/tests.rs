use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(s: &str) -> ConnInfo {
    match ConnInfo::parse(s) {
        Ok(info) => info,
        Err(e) => panic!("{s}: {e}"),
    }
}

fn refusal(s: &str) -> String {
    match ConnInfo::parse(s) {
        Ok(info) => panic!("{s} parsed: {info:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn key_value_with_quotes_and_spaces() {
    let info = parse(
        r"host = 127.0.0.1 port= 5433  dbname='my db' user=ferry options='-c search_path=\'a b\'' application_name=x\\y",
    );
    assert_eq!(info.get("host"), Some("127.0.0.1"));
    assert_eq!(info.port(), 5433);
    assert_eq!(info.get("dbname"), Some("my db"));
    assert_eq!(info.get("options"), Some("-c search_path='a b'"));
    assert_eq!(info.application_name(), Some(r"x\y"));
    assert_eq!(info.identity(), "ferry@127.0.0.1:5433/my db");
    assert_eq!(parse("dbname=''").get("dbname"), Some(""));
    assert_eq!(parse("").params().count(), 0);
}

#[test]
fn later_key_wins() {
    let info = parse("port=1 port=2");
    assert_eq!(info.params().collect::<Vec<_>>(), vec![("port", "2")]);
}

#[test]
fn malformed_key_value() {
    assert!(refusal("host").contains("expected `=` after `host`"));
    // A stray word (a password pasted without its key?) is never repeated.
    let stray = refusal("host=h user=u S3cr3t-Pa55");
    assert!(stray.contains("expected `=` after a word"), "{stray}");
    assert!(!stray.contains("S3cr3t"), "{stray}");
    assert!(refusal("=x").contains("no key"));
    assert!(refusal("dbname='abc").contains("no closing quote"));
    assert!(refusal("port=abc").contains("port must be a number"));
    assert!(refusal("sslmode=sometimes").contains("sslmode `sometimes`"));
    assert!(refusal("host=a,b").contains("several hosts"));
}

#[test]
fn uri_with_percent_encoding_and_ipv6() {
    let info = parse(
        "postgresql://fe%40rry@[::1]:5433/bill%20ing?sslmode=verify-full&application_name=a%26b",
    );
    assert_eq!(info.get("user"), Some("fe@rry"));
    assert_eq!(info.get("host"), Some("::1"));
    assert_eq!(info.port(), 5433);
    assert_eq!(info.get("dbname"), Some("bill ing"));
    assert_eq!(info.sslmode(), SslMode::VerifyFull);
    assert_eq!(info.application_name(), Some("a&b"));
    assert_eq!(info.identity(), "fe@rry@[::1]:5433/bill ing");

    let info = parse("postgres://%2Fvar%2Frun%2Fpostgresql/app?ssl=true");
    assert_eq!(info.get("host"), Some("/var/run/postgresql"));
    assert_eq!(info.sslmode(), SslMode::Require);
    assert_eq!(info.dbname(), "app");

    let info = parse("postgres://[::1]/db");
    assert_eq!(info.get("host"), Some("::1"));
    assert_eq!(info.get("port"), None);
    assert_eq!(parse("postgresql://").params().count(), 0);
}

#[test]
fn malformed_uris() {
    assert!(refusal("postgres://a,b/db").contains("several hosts"));
    assert!(refusal("postgres://::1/db").contains("brackets"));
    assert!(refusal("postgres://[::1/db").contains("closing `]`"));
    assert!(refusal("postgres://h/d%zz").contains("invalid %-escape"));
    assert!(refusal("postgres://h/d%+f").contains("invalid %-escape"));
    assert!(refusal("postgres://h/d%ff").contains("not UTF-8"));
    assert!(refusal("postgres://h/d?sslmode").contains("no `=`"));
    assert!(refusal("postgres://h/d?bogus=1").contains("unknown connection parameter `bogus`"));
}

#[test]
fn passwords_are_refused_without_echo() {
    for dsn in [
        "host=h password=hunter2",
        "host=h sslpassword=hunter2",
        "postgres://u:hunter2@h/db",
        "postgresql://h/db?password=hunter2",
    ] {
        let e = refusal(dsn);
        assert!(e.contains("the dsn holds a password"), "{dsn}: {e}");
        assert!(!e.contains("hunter2"), "{dsn}: {e}");
    }
}

#[test]
fn unknown_key_is_named() {
    let e = refusal("host=h sslmodee=require");
    assert!(
        e.starts_with("unknown connection parameter `sslmodee`"),
        "{e}"
    );
}

#[test]
fn fallbacks_follow_libpq() {
    let info = parse("");
    assert_eq!(
        info.identity_from(&no_env),
        "postgres@/var/run/postgresql:5432/postgres"
    );
    let env = |k: &str| match k {
        "PGHOST" => Some("db.example".to_owned()),
        "PGPORT" => Some("6432".to_owned()),
        "USER" => Some("alice".to_owned()),
        "PGSSLMODE" => Some("require".to_owned()),
        _ => None,
    };
    assert_eq!(info.identity_from(&env), "alice@db.example:6432/alice");
    assert_eq!(info.sslmode_from(&env), SslMode::Require);
    assert_eq!(parse("hostaddr=10.0.0.1").host_from(&no_env), "10.0.0.1");
    assert_eq!(
        parse("sslmode=disable").sslmode_from(&env),
        SslMode::Disable
    );
}

#[test]
fn with_dbname_and_debug_show_identity_only() {
    let info = parse("host=h port=1 user=u dbname=a passfile=/secret/pgpass");
    let other = info.with_dbname("postgres");
    assert_eq!(other.identity(), "u@h:1/postgres");
    assert_eq!(info.identity(), "u@h:1/a");
    assert_eq!(format!("{info:?}"), "ConnInfo(u@h:1/a)");
}

#[test]
fn sslmode_names_round_trip() {
    for name in [
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
    ] {
        let mode: SslMode = name.parse().expect("libpq name");
        assert_eq!(mode.to_string(), name);
    }
}
