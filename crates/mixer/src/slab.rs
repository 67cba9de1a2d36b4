//! A slab of participants addressed by generation-checked handles.

/// Handle of a participant in one [`crate::Mixer`].
///
/// A slab index plus a generation: once a participant is removed its handle stays invalid
/// even after the slot is reused, so a stale handle can never address someone else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId {
    index: u32,
    generation: u32,
}

impl ParticipantId {
    /// The slot index (dense, reused after removal; for logs and metrics).
    pub fn index(self) -> u32 {
        self.index
    }
}

impl std::fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "p{}.{}", self.index, self.generation)
    }
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// Vector of slots with a free list.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Slab<T> {
    pub(crate) fn new() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn insert(&mut self, value: T) -> ParticipantId {
        self.len += 1;
        if let Some(index) = self.free.pop()
            && let Some(slot) = self.slots.get_mut(index as usize)
        {
            slot.value = Some(value);
            return ParticipantId {
                index,
                generation: slot.generation,
            };
        }
        let index = self.slots.len() as u32;
        self.slots.push(Slot {
            generation: 0,
            value: Some(value),
        });
        ParticipantId {
            index,
            generation: 0,
        }
    }

    pub(crate) fn remove(&mut self, id: ParticipantId) -> Option<T> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        let v = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index);
        self.len -= 1;
        Some(v)
    }

    pub(crate) fn get(&self, id: ParticipantId) -> Option<&T> {
        let slot = self.slots.get(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.value.as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: ParticipantId) -> Option<&mut T> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        slot.value.as_mut()
    }

    /// Number of slots (occupied or not): the bound of slot indices.
    pub(crate) fn capacity_slots(&self) -> usize {
        self.slots.len()
    }

    /// The occupant of slot `index` with its handle.
    pub(crate) fn at(&self, index: usize) -> Option<(ParticipantId, &T)> {
        let slot = self.slots.get(index)?;
        let id = ParticipantId {
            index: index as u32,
            generation: slot.generation,
        };
        slot.value.as_ref().map(|v| (id, v))
    }

    /// The occupant of slot `index`, mutably.
    pub(crate) fn at_mut(&mut self, index: usize) -> Option<(ParticipantId, &mut T)> {
        let slot = self.slots.get_mut(index)?;
        let id = ParticipantId {
            index: index as u32,
            generation: slot.generation,
        };
        slot.value.as_mut().map(|v| (id, v))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (ParticipantId, &T)> {
        (0..self.slots.len()).filter_map(|i| self.at(i))
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (ParticipantId, &mut T)> {
        self.slots.iter_mut().enumerate().filter_map(|(i, s)| {
            let id = ParticipantId {
                index: i as u32,
                generation: s.generation,
            };
            s.value.as_mut().map(|v| (id, v))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_handles_do_not_alias() {
        let mut s = Slab::new();
        let a = s.insert("a");
        let b = s.insert("b");
        assert_eq!(s.remove(a), Some("a"));
        assert_eq!(s.remove(a), None);
        let c = s.insert("c");
        assert_eq!(c.index(), a.index());
        assert_ne!(c, a);
        assert_eq!(s.get(a), None);
        assert_eq!(s.get(c), Some(&"c"));
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.len(), 2);
        assert_eq!(s.iter().count(), 2);
    }
}
