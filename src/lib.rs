//! vary-build
