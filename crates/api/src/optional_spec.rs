//! MetalLB's Go types declare most `spec` fields as plain structs, so an object
//! written without `spec` (MetalLB's own documentation shows
//! `kind: L2Advertisement` with metadata only) is accepted and behaves like an
//! empty spec. kube-derive's root types require the field, so the spec types
//! listed with [`optional_spec!`] derive serde with `#[serde(remote = "Self")]`
//! and get trait impls here that read a missing or `null` spec as
//! `Default::default()`.
//!
//! A missing field makes serde's derived code call `deserialize_option`, which
//! is why deserialising through `Option` is enough.

macro_rules! optional_spec {
    ($ty:ident) => {
        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                $ty::serialize(self, serializer)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                struct Present($ty);
                impl<'de> ::serde::Deserialize<'de> for Present {
                    fn deserialize<D2: ::serde::Deserializer<'de>>(
                        deserializer: D2,
                    ) -> Result<Self, D2::Error> {
                        $ty::deserialize(deserializer).map(Present)
                    }
                }
                let present = <Option<Present> as ::serde::Deserialize>::deserialize(deserializer)?;
                Ok(present.map(|p| p.0).unwrap_or_default())
            }
        }
    };
}

pub(crate) use optional_spec;
