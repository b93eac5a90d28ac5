//! The end-of-copy summary table.

use ferry_copy::CopySummary;

pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

pub fn print_summary(s: &CopySummary) {
    let width = s
        .tables
        .iter()
        .map(|t| t.table.to_string().len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!();
    println!(
        "{:<width$}  {:>12}  {:>10}  {:>5}  {:>8}",
        "table", "rows", "bytes", "parts", "seconds"
    );
    for t in &s.tables {
        println!(
            "{:<width$}  {:>12}  {:>10}  {:>5}  {:>8.1}",
            t.table.to_string(),
            t.rows,
            human_bytes(t.bytes),
            t.parts,
            t.copy_seconds
        );
    }
    println!(
        "{:<width$}  {:>12}  {:>10}  {:>5}  {:>8.1}",
        "total",
        s.total_rows,
        human_bytes(s.total_bytes),
        "",
        s.elapsed_seconds
    );
    let steps: Vec<String> = s
        .sections
        .iter()
        .filter_map(|(n, d)| d.map(|d| format!("{n} {d:.1}s")))
        .collect();
    if !steps.is_empty() {
        println!("steps: {}", steps.join(", "));
    }
    if let Some(v) = &s.verification {
        let bad = s.mismatches();
        if bad.is_empty() {
            println!(
                "verified: row counts of all {} tables match the source's snapshot",
                v.len()
            );
        } else {
            for c in bad {
                println!(
                    "MISMATCH {}: source {} rows, target {} rows",
                    c.table, c.source_rows, c.target_rows
                );
            }
        }
    }
}
