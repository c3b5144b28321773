//! The import pipeline.

pub mod alis_file;
pub mod records;
