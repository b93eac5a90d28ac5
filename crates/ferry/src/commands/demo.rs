//! `ferry demo`: two local clusters, a pgbench database plus tables of varied types, the copy
//! run under live pgbench writes with progress bars, the summary and a verification, then
//! everything cleaned up.

use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use ferry_pg::binaries::client_tool;
use ferry_pg::local_cluster::{ClusterOptions, LocalCluster};
use tokio_postgres::NoTls;

use super::copy::{self, Flags};
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

    let dir = tempfile_dir()?;
    let spec = dir.join("demo.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"demo\"\n\n[source]\ndsn = \"{}\"\n\n[target]\ndsn = \"{}\"\n\n[copy]\njobs = 2\nsplit_tables_larger_than = \"64MB\"\n\n[tables]\n# pgbench_history has no key; it only ever receives INSERTs.\nwithout_identity = \"append_only\"\n",
            source.conninfo(DB),
            target.conninfo(DB)
        ),
    )
    .context("cannot write the demo spec")?;
    println!("Spec written to {}", spec.display());

    println!("Starting pgbench writes on the source (2 clients) while Ferry copies…");
    let mut load = pgbench
        .command()
        .args(["-n", "-c", "2", "-T", "3600", "-d"])
        .arg(source.conninfo(DB))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start pgbench")?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let args = SpecArgs {
        spec: spec.clone(),
        state: None,
    };
    let result = copy::run(
        &args,
        Flags {
            allow_nonempty_target: false,
            restart: false,
            verify: true,
        },
    )
    .await;
    let _ = load.kill();
    let _ = load.wait();
    let txns = count_history(&source.conninfo(DB)).await.unwrap_or(0);
    println!("pgbench committed {txns} transactions on the source during the copy; none of them stopped.");

    let code = result?;
    let slot = slot_position(&source.conninfo(DB)).await?;
    println!("Ferry's slot on the source: {slot} (change capture starts there).");
    let abort = super::abort::run(&args).await;
    if let Err(e) = abort {
        eprintln!("warning: cleaning up the slot failed: {e}");
    }
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

async fn slot_position(conninfo: &str) -> Result<String> {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls).await?;
    tokio::spawn(conn);
    let row = client
        .query_opt("SELECT slot_name::text, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'ferry_demo'", &[])
        .await?;
    Ok(match row {
        Some(r) => format!(
            "{} at {}",
            r.try_get::<_, String>(0)?,
            r.try_get::<_, Option<String>>(1)?.unwrap_or_default()
        ),
        None => "missing".into(),
    })
}
