use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Ferry will not start until this is fixed.
    Error,
    /// Ferry can go on, but the operator should know.
    Warning,
    Info,
}

/// One thing preflight found.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable identifier for scripts and docs, e.g. `source.wal_level`.
    pub code: &'static str,
    pub severity: Severity,
    pub summary: String,
    /// What was seen (table names, settings); may be empty.
    pub evidence: Vec<String>,
    /// What to do about it.
    pub fix: String,
}

impl Finding {
    pub fn error(code: &'static str, summary: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding {
            code,
            severity: Severity::Error,
            summary: summary.into(),
            evidence: vec![],
            fix: fix.into(),
        }
    }

    pub fn warning(code: &'static str, summary: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Warning,
            ..Finding::error(code, summary, fix)
        }
    }

    pub fn with_evidence(mut self, evidence: Vec<String>) -> Self {
        self.evidence = evidence;
        self
    }
}

/// At most this many evidence lines are printed; the rest are counted.
const SHOWN: usize = 25;

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        writeln!(f, "{label} [{}]: {}", self.code, self.summary)?;
        for e in self.evidence.iter().take(SHOWN) {
            writeln!(f, "    {e}")?;
        }
        if self.evidence.len() > SHOWN {
            writeln!(f, "    … and {} more", self.evidence.len() - SHOWN)?;
        }
        write!(f, "  fix: {}", self.fix)
    }
}
