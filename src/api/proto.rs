//! The generated gRPC types of `proto/alis/certimport/v1/certimport.proto`: the one
//! `include_proto!` site.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("alis.certimport.v1");

/// The encoded descriptor set, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("certimport_descriptor");
