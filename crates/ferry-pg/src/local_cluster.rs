//! Throwaway local clusters (initdb + pg_ctl).
