//! vary-build: find out *why* a build is not reproducible.
//!
//! It builds the same source twice or more while varying the inputs a build should not
//! depend on, and says whether the output is reproducible, which variation broke it, and
//! where the outputs differ. Data flows through these modules in order:
//!
//! ```text
//! argv ─► cli ─► config (validated) ─► plan (seeded values, BuildSpecs)
//!      ─► dispatch (tokio, -j; `vary-build __sandbox SPEC` per build: sandbox applies the
//!         spec in the child, probe verifies it) ─► artifacts (hashes)
//!      ─► verify (did each variation take effect?) ─► compare (Difference tree) ─► report
//! ```
//!
//! The binary (`src/main.rs`) is thin: it parses, calls [`run::run`], and maps the outcome to
//! an exit code with [`exit`].

pub mod artifacts;
pub mod attribute;
pub mod cli;
pub mod compare;
pub mod config;
pub mod dispatch;
pub mod exit;
pub mod explain;
pub mod host;
pub mod plan;
pub mod procstat;
pub mod report;
pub mod run;
pub mod sandbox;
pub mod spec;
pub mod variation;
pub mod vary_expr;
pub mod verify;
pub mod workspace;
