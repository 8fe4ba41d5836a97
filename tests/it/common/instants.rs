//! Instants the tests share: `T0` is "now" on the manual clock of most fixtures, the others
//! are named by their distance from it.

/// The timestamp Feast gives entity columns and values that were not found.
pub const EPOCH: &str = "1970-01-01T00:00:00Z";
/// T0 − 10 d.
pub const T0_MINUS_10D: &str = "2025-05-22T10:00:00Z";
/// T0 − 5 d.
pub const T0_MINUS_5D: &str = "2025-05-27T10:00:00Z";
/// T0 − 3 d.
pub const T0_MINUS_3D: &str = "2025-05-29T10:00:00Z";
/// T0 − 2 d.
pub const T0_MINUS_2D: &str = "2025-05-30T10:00:00Z";
/// T0 − 1 d.
pub const T0_MINUS_1D: &str = "2025-05-31T10:00:00Z";
/// T0 − 3 h.
pub const T0_MINUS_3H: &str = "2025-06-01T07:00:00Z";
/// T0 − 2 h.
pub const T0_MINUS_2H: &str = "2025-06-01T08:00:00Z";
/// T0 − 1 h.
pub const T0_MINUS_1H: &str = "2025-06-01T09:00:00Z";
/// T0 − 30 min.
pub const T0_MINUS_30M: &str = "2025-06-01T09:30:00Z";
/// T0 − 10 min.
pub const T0_MINUS_10M: &str = "2025-06-01T09:50:00Z";
/// T0 − 5 min.
pub const T0_MINUS_5M: &str = "2025-06-01T09:55:00Z";
/// T0 − 1 min.
pub const T0_MINUS_1M: &str = "2025-06-01T09:59:00Z";
/// "Now" on the manual clock of most fixtures.
pub const T0: &str = "2025-06-01T10:00:00Z";
/// T0 + 1 h.
pub const T0_PLUS_1H: &str = "2025-06-01T11:00:00Z";
/// T0 + 2 h.
pub const T0_PLUS_2H: &str = "2025-06-01T12:00:00Z";
