//! ferry-copy
