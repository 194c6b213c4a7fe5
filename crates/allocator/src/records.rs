//! Per-Service allocation records, keyed by `namespace/name`.
//!
//! Records live in a slab so the rest of the allocator refers to a Service by
//! a `u32`; the key text is stored once, in the record, and the lookup table
//! holds only slot numbers (memory per Service is a requirement).

use std::hash::BuildHasher;
use std::net::IpAddr;

use hashbrown::HashTable;

/// An interned `(protocol, port)` pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortId {
    pub proto: u32,
    pub port: i32,
}

#[derive(Clone, Debug)]
pub struct Record {
    pub key: Box<str>,
    pub pool: u32,
    /// Interned (sharing key, backend key).
    pub sharing: u32,
    pub first: IpAddr,
    pub second: Option<IpAddr>,
    pub ports: Box<[PortId]>,
}

impl Record {
    pub fn ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        std::iter::once(self.first).chain(self.second)
    }

    pub fn ip_vec(&self) -> Vec<IpAddr> {
        self.ips().collect()
    }
}

/// Records per slab chunk. Chunks (instead of one doubling Vec) keep the
/// slack to at most one chunk whatever the number of Services.
const CHUNK: usize = 1024;

#[derive(Clone, Default)]
pub struct Records {
    chunks: Vec<Box<[Option<Record>]>>,
    used: usize,
    vacant: Vec<u32>,
    index: HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
}

fn slot_ref(chunks: &[Box<[Option<Record>]>], slot: u32) -> Option<&Record> {
    let slot = slot as usize;
    chunks.get(slot / CHUNK)?.get(slot % CHUNK)?.as_ref()
}

impl Records {
    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    pub fn find(&self, key: &str) -> Option<u32> {
        let chunks = &self.chunks;
        self.index
            .find(self.hash(key), |s| {
                slot_ref(chunks, *s).is_some_and(|r| &*r.key == key)
            })
            .copied()
    }

    pub fn get(&self, slot: u32) -> Option<&Record> {
        slot_ref(&self.chunks, slot)
    }

    fn cell(&mut self, slot: u32) -> Option<&mut Option<Record>> {
        let slot = slot as usize;
        self.chunks.get_mut(slot / CHUNK)?.get_mut(slot % CHUNK)
    }

    pub fn get_mut(&mut self, slot: u32) -> Option<&mut Record> {
        self.cell(slot)?.as_mut()
    }

    /// Stores a record for a key that has none.
    pub fn insert(&mut self, record: Record) -> u32 {
        let hash = self.hash(&record.key);
        let slot = match self.vacant.pop() {
            Some(s) => s,
            None => {
                if self.used == self.chunks.len() * CHUNK {
                    self.chunks.push(
                        (0..CHUNK)
                            .map(|_| None)
                            .collect::<Vec<_>>()
                            .into_boxed_slice(),
                    );
                }
                self.used += 1;
                (self.used - 1) as u32
            }
        };
        if let Some(cell) = self.cell(slot) {
            *cell = Some(record);
        }
        let chunks = &self.chunks;
        let hasher = &self.hasher;
        self.index.insert_unique(hash, slot, |s| {
            slot_ref(chunks, *s).map_or(0, |r| hasher.hash_one(&*r.key))
        });
        slot
    }

    pub fn remove(&mut self, slot: u32) -> Option<Record> {
        let record = self.cell(slot)?.take()?;
        let hash = self.hash(&record.key);
        if let Ok(entry) = self.index.find_entry(hash, |s| *s == slot) {
            entry.remove();
        }
        self.vacant.push(slot);
        Some(record)
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &Record)> {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().map(|r| (i as u32, r)))
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(_, r)| (&r.key, r)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(key: &str) -> Record {
        Record {
            key: key.into(),
            pool: 0,
            sharing: 0,
            first: "10.0.0.1".parse().unwrap(),
            second: None,
            ports: Box::new([]),
        }
    }

    #[test]
    fn insert_find_remove_reuse() {
        let mut r = Records::default();
        let a = r.insert(rec("ns/a"));
        let b = r.insert(rec("ns/b"));
        assert_eq!(r.find("ns/a"), Some(a));
        assert_eq!(r.find("ns/b"), Some(b));
        assert_eq!(r.find("ns/c"), None);
        assert!(r.remove(a).is_some());
        assert_eq!(r.find("ns/a"), None);
        assert!(r.remove(a).is_none());
        let c = r.insert(rec("ns/c"));
        assert_eq!(c, a);
        assert_eq!(r.find("ns/c"), Some(c));
        assert_eq!(r.len(), 2);
        for i in 0..3000 {
            r.insert(rec(&format!("x/{i}")));
        }
        assert_eq!(r.find("ns/b"), Some(b));
        assert_eq!(
            r.find("x/2999").and_then(|s| r.get(s)).map(|r| &*r.key),
            Some("x/2999")
        );
        assert_eq!(r.iter().count(), 3002);
    }
}
