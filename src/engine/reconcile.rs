//! Set reconciliation (to be written).
