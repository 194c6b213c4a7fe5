//! Community alias objects (crds.md §7).

use super::{Errors, by_name, name_of};
use crate::community::Community as Value;
use crate::error::kinds;
use ferrolb_api::v1beta1::Community;
use std::collections::{BTreeMap, HashSet};

/// Alias name -> value. Alias names are global across all Community objects.
pub(crate) fn build(objects: &[Community], errs: &mut Errors) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut object_names = HashSet::new();
    for c in by_name(objects, |c| &c.metadata) {
        let name = name_of(&c.metadata);
        if !object_names.insert(name) {
            errs.push(kinds::COMMUNITY, name, "metadata.name", format!("duplicate definition of Community {name:?}"));
            continue;
        }
        for (i, alias) in c.spec.communities.iter().enumerate() {
            match Value::parse(&alias.value) {
                Ok(v) => {
                    if out.insert(alias.name.clone(), v).is_some() {
                        errs.push(
                            kinds::COMMUNITY,
                            name,
                            format!("spec.communities[{i}].name"),
                            format!("duplicate definition of community {:?}", alias.name),
                        );
                    }
                }
                Err(e) => errs.push(
                    kinds::COMMUNITY,
                    name,
                    format!("spec.communities[{i}].value"),
                    format!("parsing community {:?}: {e}", alias.name),
                ),
            }
        }
    }
    out
}

/// Resolves one `BGPAdvertisement.spec.communities` item: an alias name wins over
/// parsing (rule 3), so an alias may even be named like `1:2`.
pub(crate) fn resolve(item: &str, aliases: &BTreeMap<String, Value>) -> Result<Value, crate::community::CommunityError> {
    match aliases.get(item) {
        Some(v) => Ok(*v),
        None => Value::parse(item),
    }
}
