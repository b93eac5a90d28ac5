//! ferry-spec
