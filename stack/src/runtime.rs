//! Runtime: one pinned thread per stack core.
