//! Finding PostgreSQL server binaries and client tools of any major.
