//! Configuration building and validation for ferrolb (crds.md), offline manifest
//! reading for the CLI (cli-contract.md), and the Service copy the allocator reads.

pub mod assemble;
pub mod cidr;
pub mod community;
pub mod duration;
pub mod error;
pub mod selector;
pub mod timers;
pub mod view;

pub use error::ConfigError;
pub mod manifest;
