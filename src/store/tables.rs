//! The small tables beside the posts: the peer table (opaque records the node serialises), the
//! per-peer outbox (store-and-forward queues) and node metadata.

use crate::id::PublicId;

use super::keys::{self, META_USER, PEERS, corrupt, outbox_key, outbox_prefix};
use super::{Store, StoreError};

impl Store {
    /// Save (or replace) the record of node `id`.
    pub fn put_peer(&self, id: &PublicId, record: &[u8]) -> Result<(), StoreError> {
        self.peers.insert(id.0, record)?;
        Ok(())
    }

    /// The record of node `id`, if any.
    pub fn peer(&self, id: &PublicId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.peers.get(id.0)?.map(|v| v.to_vec()))
    }

    /// Every peer record, ordered by node id.
    pub fn peers(&self) -> Result<Vec<(PublicId, Vec<u8>)>, StoreError> {
        self.peers
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                let id: [u8; 32] = k
                    .as_ref()
                    .try_into()
                    .map_err(|_| corrupt(PEERS, &k, "peer key is not a 32-byte node id"))?;
                Ok((PublicId(id), v.to_vec()))
            })
            .collect()
    }

    /// Forget node `id`; `true` if it was known.
    pub fn remove_peer(&self, id: &PublicId) -> Result<bool, StoreError> {
        Ok(self.peers.remove(id.0)?.is_some())
    }

    /// Queue `frame` for `peer` (a node id or an address). Returns its sequence number, which
    /// grows with every push (across peers and restarts). Durable after the next `flush`.
    pub fn outbox_push(&self, peer: &str, frame: &[u8]) -> Result<u64, StoreError> {
        // sled's id generator is monotonic across crashes (it skips ahead on recovery), so
        // a frame pushed after a restart never sorts before an older one.
        let seq = self.db.generate_id()?;
        self.outbox.insert(outbox_key(peer, seq)?, frame)?;
        Ok(seq)
    }

    /// Up to `max` queued frames for `peer`, oldest first.
    pub fn outbox_peek(&self, peer: &str, max: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.outbox
            .scan_prefix(outbox_prefix(peer)?)
            .take(max)
            .map(|kv| {
                let (k, v) = kv?;
                let (_, seq) = keys::parse_outbox_key(&k)?;
                Ok((seq, v.to_vec()))
            })
            .collect()
    }

    /// Remove the frame `seq` from `peer`'s queue (a no-op if it is not there).
    pub fn outbox_ack(&self, peer: &str, seq: u64) -> Result<(), StoreError> {
        self.outbox.remove(outbox_key(peer, seq)?)?;
        Ok(())
    }

    /// Number of frames queued for `peer`.
    pub fn outbox_len(&self, peer: &str) -> Result<usize, StoreError> {
        let mut n = 0;
        for kv in self.outbox.scan_prefix(outbox_prefix(peer)?).keys() {
            kv?;
            n += 1;
        }
        Ok(n)
    }

    /// Every peer with at least one queued frame, in key order.
    pub fn outbox_peers(&self) -> Result<Vec<String>, StoreError> {
        let mut peers = Vec::new();
        let mut next = self.outbox.first()?;
        while let Some((k, _)) = next {
            let (peer, _) = keys::parse_outbox_key(&k)?;
            // Jump past this peer's last possible key instead of walking its whole queue.
            let mut past = outbox_prefix(&peer)?;
            past.extend_from_slice(&[0xff; 8]);
            next = self.outbox.get_gt(past)?;
            peers.push(peer);
        }
        Ok(peers)
    }

    /// The metadata value under `key`.
    pub fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(meta_key(key))?.map(|v| v.to_vec()))
    }

    /// Set the metadata value under `key`.
    pub fn meta_put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(meta_key(key), value)?;
        Ok(())
    }
}

fn meta_key(key: &str) -> Vec<u8> {
    let mut k = META_USER.to_vec();
    k.extend_from_slice(key.as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use crate::id::PublicId;
    use crate::store::REOPEN_WAIT;
    use crate::store::Store;

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn outbox_keeps_push_order_per_peer_and_acks_one_entry() {
        let (_dir, s) = open();
        let a1 = s.outbox_push("mailto:a@x", b"one").unwrap();
        let b1 = s.outbox_push("mailto:b@x", b"other").unwrap();
        let a2 = s.outbox_push("mailto:a@x", b"two").unwrap();
        let a3 = s.outbox_push("mailto:a@x", b"three").unwrap();
        assert!(a1 < b1 && b1 < a2 && a2 < a3);
        assert_eq!(
            s.outbox_peek("mailto:a@x", 2).unwrap(),
            vec![(a1, b"one".to_vec()), (a2, b"two".to_vec())]
        );
        assert_eq!(s.outbox_len("mailto:a@x").unwrap(), 3);
        s.outbox_ack("mailto:a@x", a2).unwrap();
        s.outbox_ack("mailto:a@x", a2).unwrap();
        assert_eq!(s.outbox_len("mailto:a@x").unwrap(), 2);
        assert_eq!(
            s.outbox_peek("mailto:a@x", 10).unwrap(),
            vec![(a1, b"one".to_vec()), (a3, b"three".to_vec())]
        );
        // A prefix of another peer's key is a different queue.
        assert_eq!(s.outbox_len("mailto:a@").unwrap(), 0);
        assert_eq!(s.outbox_peers().unwrap(), vec!["mailto:a@x", "mailto:b@x"]);
        s.outbox_ack("mailto:b@x", b1).unwrap();
        assert_eq!(s.outbox_peers().unwrap(), vec!["mailto:a@x"]);
    }

    #[test]
    fn outbox_sequence_keeps_growing_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let before = {
            let s = Store::open(dir.path()).unwrap();
            let seq = s.outbox_push("p", b"x").unwrap();
            s.flush().unwrap();
            seq
        };
        let s = Store::reopen(dir.path(), REOPEN_WAIT).unwrap();
        let after = s.outbox_push("p", b"y").unwrap();
        assert!(after > before);
        assert_eq!(
            s.outbox_peek("p", 10).unwrap(),
            vec![(before, b"x".to_vec()), (after, b"y".to_vec())]
        );
    }

    #[test]
    fn peers_are_replaced_listed_and_removed() {
        let (_dir, s) = open();
        let (a, b) = (PublicId([1; 32]), PublicId([2; 32]));
        s.put_peer(&b, b"b0").unwrap();
        s.put_peer(&a, b"a0").unwrap();
        s.put_peer(&a, b"a1").unwrap();
        assert_eq!(s.peer(&a).unwrap(), Some(b"a1".to_vec()));
        assert_eq!(
            s.peers().unwrap(),
            vec![(a, b"a1".to_vec()), (b, b"b0".to_vec())]
        );
        assert!(s.remove_peer(&a).unwrap());
        assert!(!s.remove_peer(&a).unwrap());
        assert_eq!(s.peer(&a).unwrap(), None);
        assert_eq!(s.peers().unwrap().len(), 1);
    }

    #[test]
    fn meta_keys_cannot_touch_the_stores_own_entries() {
        let (dir, s) = open();
        assert_eq!(s.meta_get("name").unwrap(), None);
        s.meta_put("name", b"relay").unwrap();
        assert_eq!(s.meta_get("name").unwrap(), Some(b"relay".to_vec()));
        // The post counter lives at `s/post_count`; a caller's key of that name is separate.
        s.meta_put("s/post_count", b"garbage").unwrap();
        s.flush().unwrap();
        drop(s);
        let s = Store::reopen(dir.path(), REOPEN_WAIT).unwrap();
        assert_eq!(s.post_count(), 0);
        assert_eq!(
            s.meta_get("s/post_count").unwrap(),
            Some(b"garbage".to_vec())
        );
    }
}
