//! `sessionAffinity: ClientIP`: (service port, client IP) → backend, with a
//! timeout refreshed on each new connection. Fixed capacity (sampling
//! eviction of the entry closest to expiry) and bounded expiry sweeps, like
//! the flow table.

use super::conntrack::{FastMap, KeyedState, SplitMix};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::time::Duration;

/// `(vip, protocol number, port, client ip)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AffinityKey {
    pub vip: Ipv4Addr,
    pub proto: u8,
    pub port: u16,
    pub client: Ipv4Addr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sticky {
    pub key: AffinityKey,
    pub backend: (Ipv4Addr, u16),
    pub expires: Duration,
}

pub struct Affinity {
    capacity: usize,
    slots: Vec<Option<Sticky>>,
    free: Vec<usize>,
    index: FastMap<AffinityKey, usize>,
    sweep: usize,
    rng: SplitMix,
}

impl Affinity {
    pub fn new(capacity: usize, seed: u64) -> Affinity {
        Affinity {
            capacity: capacity.max(1),
            slots: Vec::new(),
            free: Vec::new(),
            index: FastMap::with_hasher(KeyedState::new(seed)),
            sweep: 0,
            rng: SplitMix(seed ^ 0x2545_f491_4f6c_dd1d),
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The backend `key` sticks to, if the entry is still fresh at `now`.
    pub fn get(&self, key: &AffinityKey, now: Duration) -> Option<(Ipv4Addr, u16)> {
        let s = self.slots.get(*self.index.get(key)?)?.as_ref()?;
        (s.expires > now).then_some(s.backend)
    }

    /// Insert or refresh; returns true if another entry was evicted for room.
    pub fn set(&mut self, key: AffinityKey, backend: (Ipv4Addr, u16), expires: Duration) -> bool {
        if let Some(&i) = self.index.get(&key)
            && let Some(Some(s)) = self.slots.get_mut(i)
        {
            s.backend = backend;
            s.expires = expires;
            return false;
        }
        let evicted = self.index.len() >= self.capacity && self.evict_one();
        let entry = Some(Sticky {
            key,
            backend,
            expires,
        });
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = entry;
                i
            }
            None => {
                self.slots.push(entry);
                self.slots.len() - 1
            }
        };
        self.index.insert(key, i);
        evicted
    }

    fn remove(&mut self, i: usize) {
        if let Some(s) = self.slots.get_mut(i).and_then(Option::take) {
            self.index.remove(&s.key);
            self.free.push(i);
        }
    }

    fn evict_one(&mut self) -> bool {
        let n = self.slots.len();
        if n == 0 {
            return false;
        }
        let mut best: Option<(Duration, usize)> = None;
        for _ in 0..8 {
            let i = (self.rng.next_u64() % n as u64) as usize;
            if let Some(s) = &self.slots[i]
                && best.is_none_or(|b| s.expires < b.0)
            {
                best = Some((s.expires, i));
            }
        }
        let victim = match best {
            Some((_, i)) => Some(i),
            None => (0..n).find(|&i| self.slots[i].is_some()),
        };
        match victim {
            Some(i) => {
                self.remove(i);
                true
            }
            None => false,
        }
    }

    /// Remove expired entries, looking at no more than `budget` slots.
    pub fn expire(&mut self, now: Duration, budget: usize) -> usize {
        let n = self.slots.len();
        let mut removed = 0;
        for _ in 0..budget.min(n) {
            self.sweep = (self.sweep + 1) % n;
            let i = self.sweep;
            if self.slots[i].as_ref().is_some_and(|s| s.expires <= now) {
                self.remove(i);
                removed += 1;
            }
        }
        removed
    }

    /// Remove every entry for which `keep` is false (table updates).
    pub fn retain(&mut self, mut keep: impl FnMut(&Sticky) -> bool) {
        for i in 0..self.slots.len() {
            if self.slots[i].as_ref().is_some_and(|s| !keep(s)) {
                self.remove(i);
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Sticky> {
        self.slots.iter().flatten()
    }
}

/// Affinity entries shared by the NAT shards: a new flow's shard is chosen
/// by the client's port, but ClientIP affinity spans all of a client's
/// ports, so the entries live apart, split by client IP into separately
/// locked parts (only new flows of affinity services touch them). Lock
/// order: a flow shard, then an affinity part, never the reverse.
pub struct SharedAffinity {
    parts: Vec<std::sync::Mutex<Affinity>>,
}

impl SharedAffinity {
    /// Room for `capacity` entries in total, in `parts` parts.
    pub fn new(capacity: usize, seed: u64, parts: usize) -> SharedAffinity {
        let parts = parts.max(1);
        SharedAffinity {
            parts: (0..parts)
                .map(|i| {
                    std::sync::Mutex::new(Affinity::new(
                        capacity.div_ceil(parts),
                        seed.wrapping_add(i as u64),
                    ))
                })
                .collect(),
        }
    }

    fn part(&self, client: Ipv4Addr) -> std::sync::MutexGuard<'_, Affinity> {
        let h = u32::from(client).wrapping_mul(0x9e37_79b1) >> 16;
        let m = &self.parts[h as usize % self.parts.len()];
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, key: &AffinityKey, now: Duration) -> Option<(Ipv4Addr, u16)> {
        self.part(key.client).get(key, now)
    }

    pub fn set(&self, key: AffinityKey, backend: (Ipv4Addr, u16), expires: Duration) -> bool {
        self.part(key.client).set(key, backend, expires)
    }

    pub fn len(&self) -> usize {
        self.each(|a| a.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Run `f` on each part in turn (each locked only while `f` runs).
    pub fn each<T>(&self, mut f: impl FnMut(&mut Affinity) -> T) -> impl Iterator<Item = T> {
        let v: Vec<T> = self
            .parts
            .iter()
            .map(|m| f(&mut m.lock().unwrap_or_else(|e| e.into_inner())))
            .collect();
        v.into_iter()
    }

    /// Expire up to `budget` slots of each part.
    pub fn expire(&self, now: Duration, budget: usize) -> usize {
        self.each(|a| a.expire(now, budget)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> AffinityKey {
        AffinityKey {
            vip: Ipv4Addr::new(10, 96, 0, 1),
            proto: 6,
            port: 80,
            client: Ipv4Addr::new(10, 244, 1, n),
        }
    }

    #[test]
    fn sticks_refreshes_expires_and_is_bounded() {
        let s = Duration::from_secs;
        let b = (Ipv4Addr::new(10, 244, 0, 9), 8080);
        let mut a = Affinity::new(4, 1);
        a.set(key(1), b, s(10));
        assert_eq!(a.get(&key(1), s(9)), Some(b));
        assert_eq!(a.get(&key(1), s(10)), None);
        a.set(key(1), b, s(20));
        assert_eq!(a.get(&key(1), s(15)), Some(b));
        assert_eq!(a.len(), 1);
        let mut ev = 0;
        for n in 2..50 {
            ev += usize::from(a.set(key(n), b, s(100 + u64::from(n))));
        }
        assert_eq!(a.len(), 4);
        assert_eq!(ev, 45);
        assert!(a.slots.len() <= 4);
        assert_eq!(a.expire(s(1000), 2) + a.expire(s(1000), 100), 4);
        assert!(a.is_empty());
    }
}
