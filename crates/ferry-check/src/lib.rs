//! ferry-check
