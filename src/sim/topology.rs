//! Socially driven topologies: who follows whom.
//!
//! Social graphs are sparse with a heavy-tailed degree: most people follow a few others and a
//! few accounts are followed by many. Preferential attachment (Barabási–Albert) reproduces
//! that shape: each newcomer follows `k` existing nodes, picked with probability proportional
//! to how many links they already have. The result is connected, and follow links are used in
//! both directions (a follow is a gossip link).

use rand::Rng;
use rand::rngs::StdRng;

use super::world::NodeId;

/// An undirected neighbourhood graph over nodes `0..n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    adj: Vec<Vec<NodeId>>,
}

impl Graph {
    /// Preferential attachment: every node after the first `k + 1` (who all follow each other)
    /// follows `k` distinct earlier nodes chosen in proportion to their degree.
    pub fn preferential(n: usize, k: usize, rng: &mut StdRng) -> Graph {
        let mut adj: Vec<Vec<NodeId>> = vec![Vec::new(); n];
        // Every link end once: picking uniformly from it is picking by degree.
        let mut ends: Vec<NodeId> = Vec::new();
        let core = (k + 1).min(n);
        for a in 0..core {
            for b in a + 1..core {
                link(&mut adj, &mut ends, a as NodeId, b as NodeId);
            }
        }
        for a in core..n {
            let mut picked: Vec<NodeId> = Vec::with_capacity(k);
            while picked.len() < k.min(a) {
                let b = ends[rng.random_range(0..ends.len())];
                if !picked.contains(&b) {
                    picked.push(b);
                }
            }
            for b in picked {
                link(&mut adj, &mut ends, a as NodeId, b);
            }
        }
        for list in &mut adj {
            list.sort_unstable();
        }
        Graph { adj }
    }

    /// The neighbours of `id`, sorted.
    pub fn neighbours(&self, id: NodeId) -> &[NodeId] {
        &self.adj[id as usize]
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.adj.len()
    }

    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.adj.is_empty()
    }

    /// Mean degree.
    pub fn mean_degree(&self) -> f64 {
        let ends: usize = self.adj.iter().map(Vec::len).sum();
        ends as f64 / self.adj.len().max(1) as f64
    }
}

fn link(adj: &mut [Vec<NodeId>], ends: &mut Vec<NodeId>, a: NodeId, b: NodeId) {
    adj[a as usize].push(b);
    adj[b as usize].push(a);
    ends.push(a);
    ends.push(b);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn preferential_graph_is_connected_and_symmetric() {
        let g = Graph::preferential(500, 3, &mut StdRng::seed_from_u64(7));
        let mut seen = vec![false; g.len()];
        let mut stack = vec![0];
        seen[0] = true;
        while let Some(a) = stack.pop() {
            for &b in g.neighbours(a) {
                assert!(g.neighbours(b).contains(&a));
                if !std::mem::replace(&mut seen[b as usize], true) {
                    stack.push(b);
                }
            }
        }
        assert!(seen.iter().all(|s| *s));
        assert!((g.mean_degree() - 6.0).abs() < 0.2);
    }

    #[test]
    fn preferential_graph_has_hubs() {
        let g = Graph::preferential(2000, 3, &mut StdRng::seed_from_u64(1));
        let max = (0..2000).map(|i| g.neighbours(i).len()).max().unwrap_or(0);
        assert!(max > 40, "max degree {max}");
    }
}
