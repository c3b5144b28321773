//! The ALiS file parser.
