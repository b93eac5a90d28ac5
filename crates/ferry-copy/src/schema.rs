//! The schema, moved by PostgreSQL's own `pg_dump` and `pg_restore`: one custom-format dump
//! of the pre-data and post-data sections taken in the copy's snapshot, pre-data restored
//! before the data, post-data restored per table as each table's data is in and the rest at
//! the end. Every restore runs in a single transaction, so an interrupted one leaves nothing.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use ferry_model::TableName;
use ferry_pg::binaries::ClientTool;
use ferry_pg::Connector;

use crate::toc::{parse_listing, TocEntry};
use crate::CopyError;

/// The client binaries of one run.
#[derive(Debug, Clone)]
pub struct Tools {
    pub pg_dump: ClientTool,
    pub pg_restore: ClientTool,
}

/// Dumps pre-data and post-data of the source in `snapshot` to `path` (custom format).
pub(crate) async fn dump_schema(
    tools: &Tools,
    source: &Connector,
    snapshot: &str,
    excluded: &[TableName],
    path: &Path,
) -> Result<(), CopyError> {
    let mut args: Vec<OsString> = vec![
        "--format=custom".into(),
        format!("--snapshot={snapshot}").into(),
        "--section=pre-data".into(),
        "--section=post-data".into(),
        "--no-subscriptions".into(),
        "--file".into(),
        path.with_extension("partial").into(),
        "--dbname".into(),
        source.tool_conninfo().into(),
    ];
    for t in excluded {
        args.push(format!("--exclude-table={}", ferry_pg::quote::table(t)).into());
    }
    run(
        &tools.pg_dump,
        &args,
        &source.tool_env(),
        "pg_dump of the source's schema",
    )
    .await?;
    std::fs::rename(path.with_extension("partial"), path)
        .map_err(CopyError::io("saving the schema dump"))
}

/// Dumps the large objects (their contents) in `snapshot`; their definitions are pre-data.
pub(crate) async fn dump_large_objects(
    tools: &Tools,
    source: &Connector,
    snapshot: &str,
    path: &Path,
) -> Result<(), CopyError> {
    let args: Vec<OsString> = vec![
        "--format=custom".into(),
        format!("--snapshot={snapshot}").into(),
        "--section=data".into(),
        // `-b` is the spelling every pg_dump knows (`--large-objects` appeared in 16).
        "-b".into(),
        // Every table and sequence out: only the large objects' data remains.
        "--exclude-table=*.*".into(),
        "--file".into(),
        path.into(),
        "--dbname".into(),
        source.tool_conninfo().into(),
    ];
    run(
        &tools.pg_dump,
        &args,
        &source.tool_env(),
        "pg_dump of the large objects",
    )
    .await?;
    Ok(())
}

/// Restores all of `dump` with `pg_restore` in a single transaction (large objects, whose
/// script form would hold their contents in memory).
pub(crate) async fn restore(
    tools: &Tools,
    target: &Connector,
    dump: &Path,
    what: &str,
) -> Result<(), CopyError> {
    let mut args: Vec<OsString> = vec!["--single-transaction".into(), "--exit-on-error".into()];
    args.extend([
        "--dbname".into(),
        target.tool_conninfo().into(),
        dump.into(),
    ]);
    run(&tools.pg_restore, &args, &target.tool_env(), what).await?;
    Ok(())
}

/// The dump's table of contents.
pub(crate) async fn listing(tools: &Tools, dump: &Path) -> Result<Vec<TocEntry>, CopyError> {
    let args: Vec<OsString> = vec!["--list".into(), dump.into()];
    let out = run(
        &tools.pg_restore,
        &args,
        &[],
        "reading the schema dump's contents",
    )
    .await?;
    Ok(parse_listing(&out))
}

/// The SQL that restoring `section` of `dump` runs (only `entries`, when given, listed in
/// `list_path`), for [`crate::commit::apply_once`] to execute in one transaction of its own.
pub(crate) async fn script(
    tools: &Tools,
    dump: &Path,
    entries: Option<(&[TocEntry], &Path)>,
    section: &str,
    target_version_num: u32,
) -> Result<String, CopyError> {
    let mut args: Vec<OsString> = vec!["--file=-".into(), format!("--section={section}").into()];
    if let Some((entries, list_path)) = entries {
        let text: String = entries.iter().map(|e| format!("{}\n", e.line)).collect();
        std::fs::write(list_path, text)
            .map_err(CopyError::io(format!("writing {}", list_path.display())))?;
        args.extend(["--use-list".into(), list_path.into()]);
    }
    args.push(dump.into());
    let out = run(&tools.pg_restore, &args, &[], "reading the schema dump").await?;
    Ok(for_target(&out, target_version_num))
}

/// Makes a `pg_restore` script runnable on the target over a plain session: drops the psql
/// meta-commands `pg_dump` 17.6+ writes around it (`\\restrict KEY`, `\\unrestrict KEY`; a
/// server rejects them, and they guard only psql sessions), and the `SET transaction_timeout`
/// that client tools 17+ write, which older targets do not know (used when no client tools of
/// a major between the source's and the target's are installed).
fn for_target(script: &str, target_version_num: u32) -> String {
    script
        .lines()
        .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
        .filter(|l| target_version_num >= 170_000 || !l.starts_with("SET transaction_timeout"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The DROP statements that undo what restoring `dump`'s pre-data created (for `--restart`).
pub(crate) async fn drop_statements(tools: &Tools, dump: &Path) -> Result<Vec<String>, CopyError> {
    let args: Vec<OsString> = vec![
        "--clean".into(),
        "--if-exists".into(),
        "--section=pre-data".into(),
        "--file=-".into(),
        dump.into(),
    ];
    let script = run(
        &tools.pg_restore,
        &args,
        &[],
        "listing what the earlier run restored",
    )
    .await?;
    // pg_restore prints every DROP first, then the first object's `-- Name:` header.
    Ok(script
        .lines()
        .take_while(|l| !l.starts_with("-- Name:"))
        .filter(|l| l.starts_with("DROP ") || l.starts_with("ALTER "))
        .map(str::to_owned)
        .collect())
}

async fn run(
    tool: &ClientTool,
    args: &[OsString],
    env: &[(String, String)],
    what: &str,
) -> Result<String, CopyError> {
    let mut cmd = tokio::process::Command::new(&tool.path);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .kill_on_drop(true);
    if let Some(lib) = &tool.lib_dir {
        cmd.env("LD_LIBRARY_PATH", lib);
    }
    tracing::debug!(tool = %tool.path.display(), what, "running");
    let out = cmd.output().await.map_err(|e| CopyError::Tool {
        what: what.to_owned(),
        detail: format!("cannot run {}: {e}", tool.path.display()),
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let detail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        return Err(CopyError::Tool {
            what: what.to_owned(),
            detail: format!(
                "{} exited with {}:\n{detail}",
                display_name(&tool.path),
                out.status
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn display_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The files of one run in the state directory.
pub(crate) struct DumpFiles {
    pub schema: PathBuf,
    pub large_objects: PathBuf,
    pub lists: PathBuf,
}

impl DumpFiles {
    pub fn new(state_dir: &Path) -> DumpFiles {
        DumpFiles {
            schema: state_dir.join("schema.dump"),
            large_objects: state_dir.join("large-objects.dump"),
            lists: state_dir.join("lists"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::for_target;

    #[test]
    fn strips_only_restrict_meta_commands() {
        let script = "\\restrict abc\nSET x = 1;\nCREATE FUNCTION f() AS $$\n\\not a command$$;\n\\unrestrict abc\n";
        assert_eq!(
            for_target(script, 180_000),
            "SET x = 1;\nCREATE FUNCTION f() AS $$\n\\not a command$$;\n"
        );
    }

    #[test]
    fn drops_transaction_timeout_for_targets_before_17() {
        let script = "SET lock_timeout = 0;\nSET transaction_timeout = 0;\n";
        assert_eq!(for_target(script, 150_004), "SET lock_timeout = 0;\n");
        assert_eq!(for_target(script, 170_000), script);
    }
}
