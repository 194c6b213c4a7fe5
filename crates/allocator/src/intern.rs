//! Interned strings shared by many records: sharing/backend key pairs and
//! port protocols. Records keep a `u32` instead of their own copy.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use hashbrown::Equivalent;

/// The id of the empty (sharing, backend) pair, which most Services have.
pub const NO_SHARING: u32 = 0;

#[derive(Clone, Debug)]
struct KeyEntry {
    sharing: Box<str>,
    backend: Box<str>,
    refs: u64,
}

/// (sharing key, backend key) pairs with reference counts.
#[derive(Clone, Debug)]
pub struct SharingKeys {
    ids: hashbrown::HashMap<(Box<str>, Box<str>), u32>,
    entries: Vec<Option<KeyEntry>>,
    vacant: Vec<u32>,
}

/// A borrowed pair that hashes and compares like the stored `(Box<str>,
/// Box<str>)` key, so lookups allocate nothing.
#[derive(Clone, Copy)]
struct PairRef<'a>(&'a str, &'a str);

impl Hash for PairRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl Equivalent<(Box<str>, Box<str>)> for PairRef<'_> {
    fn equivalent(&self, key: &(Box<str>, Box<str>)) -> bool {
        *key.0 == *self.0 && *key.1 == *self.1
    }
}

fn owned(sharing: &str, backend: &str) -> (Box<str>, Box<str>) {
    (sharing.into(), backend.into())
}

impl Default for SharingKeys {
    fn default() -> Self {
        let mut keys = SharingKeys {
            ids: hashbrown::HashMap::default(),
            entries: Vec::new(),
            vacant: Vec::new(),
        };
        keys.entries.push(Some(KeyEntry {
            sharing: "".into(),
            backend: "".into(),
            refs: 0,
        }));
        keys.ids.insert(owned("", ""), NO_SHARING);
        keys
    }
}

impl SharingKeys {
    pub fn lookup(&self, sharing: &str, backend: &str) -> Option<u32> {
        if sharing.is_empty() && backend.is_empty() {
            return Some(NO_SHARING);
        }
        self.ids.get(&PairRef(sharing, backend)).copied()
    }

    pub fn acquire(&mut self, sharing: &str, backend: &str) -> u32 {
        let id = match self.lookup(sharing, backend) {
            Some(id) => id,
            None => {
                let entry = KeyEntry {
                    sharing: sharing.into(),
                    backend: backend.into(),
                    refs: 0,
                };
                let id = match self.vacant.pop() {
                    Some(id) => {
                        self.entries[id as usize] = Some(entry);
                        id
                    }
                    None => {
                        self.entries.push(Some(entry));
                        (self.entries.len() - 1) as u32
                    }
                };
                self.ids.insert(owned(sharing, backend), id);
                id
            }
        };
        if let Some(Some(e)) = self.entries.get_mut(id as usize) {
            e.refs += 1;
        }
        id
    }

    pub fn release(&mut self, id: u32) {
        let Some(Some(e)) = self.entries.get_mut(id as usize) else {
            return;
        };
        e.refs = e.refs.saturating_sub(1);
        if e.refs == 0 && id != NO_SHARING {
            self.ids.remove(&PairRef(&e.sharing, &e.backend));
            self.entries[id as usize] = None;
            self.vacant.push(id);
        }
    }

    /// `(sharing, backend)`; unknown ids read as the empty pair.
    pub fn get(&self, id: u32) -> (&str, &str) {
        match self.entries.get(id as usize) {
            Some(Some(e)) => (&e.sharing, &e.backend),
            _ => ("", ""),
        }
    }

    #[cfg(test)]
    /// Number of distinct live pairs, the empty one included.
    pub fn live(&self) -> usize {
        self.ids.len()
    }
}

/// Protocol names; TCP, UDP and SCTP are pre-registered. Never shrinks: the
/// API server only admits those three, so the table stays tiny.
#[derive(Clone, Debug)]
pub struct Protocols {
    ids: HashMap<Box<str>, u32>,
}

impl Default for Protocols {
    fn default() -> Self {
        let ids = ["TCP", "UDP", "SCTP"]
            .iter()
            .enumerate()
            .map(|(i, p)| (Box::<str>::from(*p), i as u32))
            .collect();
        Protocols { ids }
    }
}

impl Protocols {
    pub fn lookup(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.lookup(name) {
            return id;
        }
        let id = self.ids.len() as u32;
        self.ids.insert(name.into(), id);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharing_keys_are_refcounted() {
        let mut k = SharingKeys::default();
        assert_eq!(k.lookup("", ""), Some(NO_SHARING));
        let a = k.acquire("k", "");
        let b = k.acquire("k", "");
        assert_eq!(a, b);
        assert_ne!(a, NO_SHARING);
        assert_ne!(k.acquire("", "k"), a);
        assert_eq!(k.get(a), ("k", ""));
        k.release(a);
        assert_eq!(k.lookup("k", ""), Some(a));
        k.release(a);
        assert_eq!(k.lookup("k", ""), None);
        assert_eq!(k.live(), 2);
        assert_eq!(k.acquire("", ""), NO_SHARING);
        k.release(NO_SHARING);
        k.release(NO_SHARING);
        assert_eq!(k.lookup("", ""), Some(NO_SHARING));
    }

    #[test]
    fn protocols() {
        let mut p = Protocols::default();
        assert_eq!(p.lookup("TCP"), Some(0));
        assert_eq!(p.lookup("XYZ"), None);
        let x = p.intern("XYZ");
        assert_eq!(p.intern("XYZ"), x);
        assert_eq!(p.lookup("UDP"), Some(1));
    }
}
