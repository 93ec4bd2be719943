//! A service's schedule as the XDP program reads it: a ring of real-server slots. rr and wrr
//! rotate through it (one step per new flow); sh and mh index it by a hash of the client,
//! and it is then a Maglev lookup table (Eisenbud et al., NSDI 2016), so a weight change or
//! a server going moves only the clients that must move.

use super::model::Algo;

/// Slots of a rotation at most (wrr weights are scaled down to fit).
pub const ROTATION_MAX: usize = 1024;
/// Slots of a hash table (a prime, as Maglev needs).
pub const HASH_TABLE: usize = 1021;

/// The most slots `algo` ever needs.
pub fn max_len(algo: Algo) -> usize {
    match algo {
        Algo::Rr | Algo::Wrr | Algo::Twos | Algo::Lblc | Algo::Lblcr => ROTATION_MAX,
        Algo::Sh | Algo::Mh => HASH_TABLE,
        Algo::Lc | Algo::Wlc | Algo::Sed | Algo::Nq | Algo::Ovf | Algo::Fo => {
            agent_common::LB_LEAST_MAX as usize
        }
        Algo::Dh => HASH_TABLE,
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The ring for `algo` over the servers that can take traffic: `(slot index, weight)`, weight
/// above 0. Empty when there is none.
pub fn ring(algo: Algo, servers: &[(u32, u32)]) -> Vec<u32> {
    let servers: Vec<(u32, u64)> = servers
        .iter()
        .filter(|(_, w)| *w > 0)
        .map(|&(i, w)| (i, u64::from(w)))
        .collect();
    if servers.is_empty() {
        return Vec::new();
    }
    match algo {
        // rr ignores weights beyond 0 (IPVS's rr). lc and wlc: the servers, each once; the
        // kernel picks among them by open flows (and weights, in the real servers' entries).
        Algo::Rr | Algo::Lc | Algo::Wlc | Algo::Sed | Algo::Nq => {
            servers.iter().map(|(i, _)| *i).collect()
        }
        // fo: the heaviest (the first of equals) alone; ovf: heaviest first, the kernel
        // moves on when one is full.
        Algo::Fo => servers
            .iter()
            .fold(None::<(u32, u64)>, |best, &(i, w)| match best {
                Some((_, bw)) if bw >= w => best,
                _ => Some((i, w)),
            })
            .map(|(i, _)| vec![i])
            .unwrap_or_default(),
        Algo::Ovf => {
            let mut by_weight = servers.clone();
            by_weight.sort_by_key(|&(_, w)| std::cmp::Reverse(w));
            by_weight.into_iter().map(|(i, _)| i).collect()
        }
        // twos (and lblc / lblcr for a new destination) draws from the weighted sequence: a
        // server comes up as often as its weight.
        Algo::Wrr | Algo::Twos | Algo::Lblc | Algo::Lblcr => wrr(&servers),
        Algo::Sh | Algo::Mh | Algo::Dh => maglev(&servers, HASH_TABLE),
    }
}

/// IPVS's weighted round robin sequence: the current weight steps down from the largest by the
/// weights' gcd, and each round takes every server at least that heavy — heavier servers come
/// more often, interleaved. Weights are scaled so the sequence fits [`ROTATION_MAX`].
fn wrr(servers: &[(u32, u64)]) -> Vec<u32> {
    let g = servers.iter().fold(0, |g, (_, w)| gcd(g, *w));
    let mut weights: Vec<(u32, u64)> = servers.iter().map(|&(i, w)| (i, w / g)).collect();
    let total: u64 = weights.iter().map(|(_, w)| w).sum();
    if total > ROTATION_MAX as u64 {
        // Keep the proportions as far as the ring allows; nobody drops to 0.
        for (_, w) in &mut weights {
            *w = (*w * ROTATION_MAX as u64 / total).max(1);
        }
        let g = weights.iter().fold(0, |g, (_, w)| gcd(g, *w));
        for (_, w) in &mut weights {
            *w /= g;
        }
    }
    let max = weights.iter().map(|(_, w)| *w).max().unwrap_or(0);
    let mut out = Vec::new();
    let mut cw = max;
    while cw > 0 && out.len() < ROTATION_MAX {
        for (i, w) in &weights {
            if *w >= cw && out.len() < ROTATION_MAX {
                out.push(*i);
            }
        }
        cw -= 1;
    }
    out
}

/// FNV-1a of a server's slot index with a seed: Maglev's two per-server hashes.
fn fnv(index: u32, seed: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in index.to_le_bytes().iter().chain(seed.to_le_bytes().iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Maglev population with weights: each server walks its own permutation of the table
/// (offset + k·skip mod m) and, each round, claims as many free slots as its weight (scaled
/// by the gcd). Depends only on the servers' slot indices and weights, never on their order.
fn maglev(servers: &[(u32, u64)], m: usize) -> Vec<u32> {
    let mut servers = servers.to_vec();
    servers.sort_by_key(|(i, _)| *i);
    let g = servers.iter().fold(0, |g, (_, w)| gcd(g, *w));
    let max_turns = servers.iter().map(|(_, w)| w / g).max().unwrap_or(1);
    // Turns per round at most the table size (a weight of millions needs no more).
    let scale = max_turns.div_ceil(m as u64).max(1);
    let perms: Vec<(u64, u64, u64)> = servers
        .iter()
        .map(|&(i, w)| {
            let offset = fnv(i, 0x5eed) % m as u64;
            let skip = fnv(i, 0xca11) % (m as u64 - 1) + 1;
            (offset, skip, (w / g / scale).max(1))
        })
        .collect();
    let mut next = vec![0u64; servers.len()];
    let mut table: Vec<Option<u32>> = vec![None; m];
    let mut filled = 0;
    while filled < m {
        for (k, &(offset, skip, turns)) in perms.iter().enumerate() {
            for _ in 0..turns {
                if filled == m {
                    break;
                }
                loop {
                    let slot = ((offset + next[k] * skip) % m as u64) as usize;
                    next[k] += 1;
                    if table[slot].is_none() {
                        table[slot] = Some(servers[k].0);
                        filled += 1;
                        break;
                    }
                }
            }
        }
    }
    table.into_iter().map(|s| s.unwrap_or(0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(ring: &[u32], i: u32) -> usize {
        ring.iter().filter(|s| **s == i).count()
    }

    #[test]
    fn rr_takes_each_up_server_once_and_skips_weight_0() {
        assert_eq!(ring(Algo::Rr, &[(0, 1), (1, 5), (2, 0)]), vec![0, 1]);
        assert!(ring(Algo::Rr, &[(0, 0)]).is_empty());
        assert!(ring(Algo::Wrr, &[]).is_empty());
    }

    #[test]
    fn fo_takes_the_heaviest_and_ovf_orders_by_weight() {
        assert_eq!(ring(Algo::Fo, &[(0, 1), (1, 5), (2, 5)]), vec![1]);
        assert_eq!(ring(Algo::Ovf, &[(0, 1), (1, 5), (2, 3)]), vec![1, 2, 0]);
        assert!(ring(Algo::Fo, &[(0, 0)]).is_empty());
    }

    #[test]
    fn wrr_is_ipvs_s_interleaved_sequence() {
        // Weights 4, 3, 2 (IPVS's example): a a b a b c a b c.
        assert_eq!(
            ring(Algo::Wrr, &[(0, 4), (1, 3), (2, 2)]),
            vec![0, 0, 1, 0, 1, 2, 0, 1, 2]
        );
        // The gcd is divided out: 2, 2 is 1, 1.
        assert_eq!(ring(Algo::Wrr, &[(5, 2), (6, 2)]), vec![5, 6]);
    }

    #[test]
    fn wrr_scales_huge_weights_into_the_ring_keeping_their_proportions() {
        let r = ring(Algo::Wrr, &[(0, 3_000_000), (1, 1_000_000), (2, 1)]);
        assert!(r.len() <= ROTATION_MAX);
        let (a, b) = (count(&r, 0), count(&r, 1));
        assert!((a as f64 / b as f64 - 3.0).abs() < 0.05, "{a} {b}");
        assert!(count(&r, 2) >= 1, "the light one still gets a turn");
    }

    #[test]
    fn maglev_fills_the_table_by_weight() {
        let r = ring(Algo::Mh, &[(0, 1), (1, 1), (2, 2)]);
        assert_eq!(r.len(), HASH_TABLE);
        let share = |i| count(&r, i) as f64 / HASH_TABLE as f64;
        assert!((share(0) - 0.25).abs() < 0.03, "{}", share(0));
        assert!((share(2) - 0.5).abs() < 0.03, "{}", share(2));
    }

    #[test]
    fn maglev_moves_few_clients_when_a_server_goes_and_none_of_the_others() {
        let before = ring(Algo::Sh, &[(0, 1), (1, 1), (2, 1), (3, 1)]);
        let after = ring(Algo::Sh, &[(0, 1), (1, 1), (3, 1)]);
        let mut moved_elsewhere = 0;
        for (b, a) in before.iter().zip(&after) {
            if *b != 2 && a != b {
                moved_elsewhere += 1;
            }
        }
        // Only server 2's quarter must move; Maglev moves a little more, never much.
        assert!(
            moved_elsewhere < HASH_TABLE / 20,
            "{moved_elsewhere} slots of servers still up moved"
        );
        // The order servers are given in changes nothing.
        assert_eq!(
            ring(Algo::Sh, &[(3, 1), (1, 1), (0, 1)]),
            after,
            "order-independent"
        );
    }
}
