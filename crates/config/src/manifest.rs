//! Offline input for the CLI (cli-contract.md "Input").

mod split;
mod yaml;

pub use yaml::Limits;
