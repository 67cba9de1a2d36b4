//! Priority-then-weight ordering, shared by carriers (termination) and origination routes.
//!
//! Lower priority values come first. Among equal priorities the order is a weighted random
//! permutation: the first place goes to each candidate with probability weight / total, the
//! second is drawn the same way from those left, and so on (choice without replacement), so
//! over many calls the first attempt splits in proportion to the weights and the failover
//! order is still random. Candidates of weight 0 come after every weighted one of the same
//! priority, in their given order.
//!
//! The random source is passed in: `pick(n)` must return a value in `0..n` (n ≥ 1), so tests
//! drive it with a seeded generator and the edge with the thread RNG.

/// Orders `items` by `(priority, weight)` as described in the module documentation.
pub fn order<'a, T>(
    items: impl IntoIterator<Item = &'a T>,
    key: impl Fn(&T) -> (u32, u32),
    pick: &mut impl FnMut(u32) -> u32,
) -> Vec<&'a T> {
    let mut items: Vec<&'a T> = items.into_iter().collect();
    // Stable: equal priorities keep their given order before the draw.
    items.sort_by_key(|t| key(t).0);
    let mut out = Vec::with_capacity(items.len());
    let mut start = 0;
    while start < items.len() {
        let prio = key(items[start]).0;
        let end = start
            + items[start..]
                .iter()
                .take_while(|t| key(t).0 == prio)
                .count();
        let mut group: Vec<&'a T> = items[start..end].to_vec();
        while !group.is_empty() {
            let total: u64 = group.iter().map(|t| u64::from(key(t).1)).sum();
            if total == 0 {
                out.append(&mut group);
                break;
            }
            let total32 = u32::try_from(total).unwrap_or(u32::MAX);
            let mut r = u64::from(pick(total32).min(total32 - 1));
            let mut chosen = group.len() - 1;
            for (i, t) in group.iter().enumerate() {
                let w = u64::from(key(t).1);
                if r < w {
                    chosen = i;
                    break;
                }
                r -= w;
            }
            out.push(group.remove(chosen));
        }
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn priority_first_then_weight() {
        // (name, priority, weight)
        let items = [("c", 2, 1), ("a", 1, 0), ("b", 1, 5), ("d", 3, 1)];
        let mut zero = |_n: u32| 0;
        let names: Vec<_> = order(&items, |t| (t.1, t.2), &mut zero)
            .iter()
            .map(|t| t.0)
            .collect();
        // Priority 1: b (weight 5) before a (weight 0, always last of its priority).
        assert_eq!(names, ["b", "a", "c", "d"]);
    }

    #[test]
    fn weights_one_to_three_split_25_75() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut pick = |n: u32| rng.random_range(0..n);
        let items = [("light", 1, 1), ("heavy", 1, 3)];
        let mut heavy_first = 0;
        for _ in 0..4000 {
            let o = order(&items, |t| (t.1, t.2), &mut pick);
            assert_eq!(o.len(), 2, "every candidate is in the failover order");
            if o[0].0 == "heavy" {
                heavy_first += 1;
            }
        }
        let share = f64::from(heavy_first) / 4000.0;
        assert!((0.72..=0.78).contains(&share), "heavy first {share}");
    }

    #[test]
    fn an_out_of_range_pick_is_clamped() {
        let items = [("a", 1, 1), ("b", 1, 1)];
        let mut wild = |_n: u32| u32::MAX;
        let o = order(&items, |t| (t.1, t.2), &mut wild);
        assert_eq!(o.len(), 2);
    }
}
