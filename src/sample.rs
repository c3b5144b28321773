//! Sample data generator.
