//! Placeholder: the disorderfs crate is being written.
