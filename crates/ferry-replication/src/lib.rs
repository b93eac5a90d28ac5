//! ferry-replication
