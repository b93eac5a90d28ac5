//! `ferry demo`: two local clusters, a pgbench database plus tables of varied types, and the
//! whole workflow (`ferry migrate` with automatic cutover) under pgbench writes from an
//! application role of its own; then the proof that every committed pgbench transaction is
//! on the target and that validation found nothing different, the report, and everything
//! cleaned up.

use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use ferry_pg::binaries::client_tool;
use ferry_pg::local_cluster::{ClusterOptions, LocalCluster};
use tokio_postgres::NoTls;

use super::migrate;
use crate::cli::SpecArgs;

const DB: &str = "demo";

pub async fn run(scale: u32, keep: bool) -> Result<ExitCode> {
    println!("Starting two local PostgreSQL clusters (source and target)…");
    // The source as it should be run: its slots may not hold back WAL without bound.
    let source_options = ClusterOptions {
        name: "ferry-demo-source".into(),
        settings: vec![("max_slot_wal_keep_size".into(), "10GB".into())],
        ..ClusterOptions::default()
    };
    let target_options = ClusterOptions {
        name: "ferry-demo-target".into(),
        ..ClusterOptions::default()
    };
    let source =
        tokio::task::spawn_blocking(move || LocalCluster::start(&source_options)).await??;
    let target =
        tokio::task::spawn_blocking(move || LocalCluster::start(&target_options)).await??;
    println!(
        "  source: PostgreSQL {} on port {}",
        source.major(),
        source.port()
    );
    println!(
        "  target: PostgreSQL {} on port {}",
        target.major(),
        target.port()
    );
    for c in [&source, &target] {
        sql(&c.conninfo("postgres"), &format!("CREATE DATABASE {DB}")).await?;
    }

    println!("Loading pgbench at scale {scale} and tables of varied types into the source…");
    let pgbench = client_tool("pgbench", 10)?;
    let status = pgbench
        .command()
        .args(["-i", "-q", "-s", &scale.to_string(), "--foreign-keys", "-d"])
        .arg(source.conninfo(DB))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("cannot run pgbench -i")?;
    anyhow::ensure!(status.success(), "pgbench -i failed ({status})");
    sql(&source.conninfo(DB), include_str!("demo_types.sql")).await?;

    // The application writes as a role of its own: the cutover's fence keeps out every role
    // but Ferry's.
    sql(
        &source.conninfo(DB),
        "CREATE ROLE demo_app LOGIN; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO demo_app",
    )
    .await?;

    let dir = tempfile_dir()?;
    let spec = dir.join("demo.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"demo\"\n\n[source]\ndsn = \"{}\"\n\n[target]\ndsn = \"{}\"\n\n[copy]\njobs = 2\nsplit_tables_larger_than = \"64MB\"\nmissing_roles = \"create\"\n\n[tables]\n# pgbench_history has no key; it only ever receives INSERTs.\nwithout_identity = \"append_only\"\n\n[sync]\nmax_lag = \"1s\"\nsustained = \"5s\"\n\n[cutover]\napproval = \"auto\"\ndrain_timeout = \"2s\"\n",
            source.conninfo(DB),
            target.conninfo(DB)
        ),
    )
    .context("cannot write the demo spec")?;
    println!("Spec written to {}", spec.display());

    println!(
        "Starting pgbench writes on the source (4 clients, 300 transactions a second, role demo_app) for the whole migration…"
    );
    // At a few hundred transactions a second the demo's validation takes seconds; at the
    // source's full speed it currently takes minutes (bench/README.md, the workflow benchmark).
    let mut load = pgbench
        .command()
        .args(["-n", "-c", "4", "-R", "300", "-T", "3600", "-d"])
        .arg(app_conninfo(&source.conninfo(DB)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start pgbench")?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let args = SpecArgs {
        spec: spec.clone(),
        state: None,
    };
    println!("Running `ferry migrate` (automatic cutover once the lag stays under 1 s for 5 s and validation is clean)…");
    let result = migrate::run(
        &args,
        migrate::Flags {
            allow_nonempty_target: false,
            verify_sample: 0.001,
            retry_for: Duration::from_secs(60),
        },
    )
    .await;
    // The fence ended pgbench's sessions at cutover; stop what is left of it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = load.kill();
    let _ = load.wait();
    let code = result?;
    let on_source = count_history(&source.conninfo(DB)).await?;
    let on_target = count_history(&target.conninfo(DB)).await?;
    println!();
    println!(
        "pgbench committed {on_source} transactions on the source; pgbench_history on the target holds {on_target} rows: {}",
        if on_source == on_target {
            "every committed transaction is on the target"
        } else {
            "MISMATCH"
        }
    );
    let session = crate::session::Session::open(&args, false)?;
    if let Some(v) = ferry_store::StateStore::last_validation(&session.store)? {
        println!(
            "validation before cutover: {} ({} table(s), {} difference(s))",
            v.result, v.tables, v.differences
        );
    }
    drop(session);
    if let Err(e) = super::steer::finalize(&args).await {
        eprintln!("warning: finalize failed: {e}");
    }
    let code = if on_source == on_target {
        code
    } else {
        ExitCode::FAILURE
    };
    if keep {
        println!(
            "Keeping the clusters: source {} / target {}",
            source.conninfo(DB),
            target.conninfo(DB)
        );
        println!("Press Ctrl-C to stop them.");
        let _ = tokio::signal::ctrl_c().await;
    }
    drop(source);
    drop(target);
    let _ = std::fs::remove_dir_all(&dir);
    println!("Clusters stopped and removed.");
    Ok(code)
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("ferry-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

async fn sql(conninfo: &str, text: &str) -> Result<()> {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls)
        .await
        .context("cannot connect to a demo cluster")?;
    tokio::spawn(conn);
    client
        .batch_execute(text)
        .await
        .context("demo setup SQL failed")?;
    Ok(())
}

async fn count_history(conninfo: &str) -> Result<i64> {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls).await?;
    tokio::spawn(conn);
    Ok(client
        .query_one("SELECT count(*) FROM pgbench_history", &[])
        .await?
        .try_get(0)?)
}

/// The demo database's conninfo, connecting as the application role.
fn app_conninfo(conninfo: &str) -> String {
    conninfo
        .split_whitespace()
        .map(|kv| {
            if kv.starts_with("user=") {
                "user=demo_app".to_owned()
            } else {
                kv.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
