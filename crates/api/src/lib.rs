//! The metallb.io API: custom resource types (same kinds, fields, defaults and
//! schema validation as MetalLB), CRD generation, BGPPeer version conversion and
//! the annotation/label keys MetalLB reads and writes.
//!
//! The vocabulary (`annotations`, `labels`, `events`, [`GROUP`]) is defined here
//! once and needs no dependency; the rest needs the default `types` feature.

// kube's `printcolumn(name = .., type_ = .., ..)` repeats keys across columns by
// design; clippy reads each repetition as a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

pub mod annotations;
#[cfg(feature = "types")]
pub mod cel;
#[cfg(feature = "types")]
pub mod conversion;
#[cfg(feature = "types")]
pub mod crds;
pub mod events;
pub mod labels;
#[cfg(feature = "types")]
mod optional_spec;
#[cfg(feature = "types")]
mod schema_attrs;
#[cfg(feature = "types")]
mod schema_fixups;
#[cfg(feature = "types")]
mod serde_defaults;
#[cfg(feature = "types")]
pub mod v1beta1;
#[cfg(feature = "types")]
pub mod v1beta2;

/// API group of every kind in this crate.
pub const GROUP: &str = "metallb.io";
