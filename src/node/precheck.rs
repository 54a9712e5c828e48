//! Post signatures checked ahead of the engine, on other cores.
//!
//! The engine verifies every arriving post on the actor's thread, which also stores them: in a
//! history sync (thousands of posts a second in PushBatch frames) ed25519 took about half of
//! that thread while the other core had room. Frames carrying several posts now pass through
//! this stage first: it checks their posts' signatures on its own threads, several frames at
//! once, notes the ids of the good ones in [`Checked`], and hands the frames on in the order
//! they came, so the actor stores one frame while the next ones are checked. The engine then
//! checks only those posts' clocks ([`crate::engine::PostStore::signature_checked`]); a post
//! whose signature fails here is simply not noted, and the engine refuses it (and penalises its
//! sender) as before.
//!
//! The checking threads run at a lower priority (Linux): the actor is the one thread every
//! post goes through, and with four checks on two cores it got about 65% of a core while it
//! was the bound of a catch-up; the checks take what it leaves.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};

use bytes::Bytes;
use lakitu_transport::TransportEvent;
use tokio::sync::{mpsc, oneshot};

use crate::engine::wire;
use crate::post::PostId;

/// Frames with fewer posts go straight on: a lone push is checked faster than it is handed
/// to another thread.
const MIN_POSTS: usize = 4;
/// Checks queued or running at once: enough to keep every core busy while the actor stores.
const IN_FLIGHT: usize = 4;
/// How much nicer the checking threads are than the thread that starts them: relative, so a
/// relay started under `nice` keeps the actor ahead of its checks too.
#[cfg(target_os = "linux")]
const NICER: libc::c_int = 10;
/// Ids noted and not yet taken, at most. Frames the actor then drops before the engine takes
/// their posts (a sender that is not a peer, one the access policy refuses, a frame that does
/// not decode) leave their ids behind, so when full the set starts afresh: the posts noted
/// and not yet taken are then simply checked again by the engine.
const MAX_CHECKED: usize = 1 << 16;

/// Ids of posts whose signatures this stage checked, each taken once by the engine.
#[derive(Debug, Default)]
pub(crate) struct Checked(Mutex<HashSet<PostId>>);

impl Checked {
    fn note(&self, ids: impl IntoIterator<Item = PostId>) {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for id in ids {
            if set.len() >= MAX_CHECKED {
                set.clear();
            }
            set.insert(id);
        }
    }

    /// True (once) when this stage checked the signature of post `id`.
    pub(crate) fn take(&self, id: &PostId) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(id)
    }
}

/// A frame's check: its payload, and where to say it is done.
type Job = (Bytes, oneshot::Sender<()>);

/// The checking threads, one per core; they end when the sending side is dropped.
fn start_checkers(checked: Arc<Checked>, max_frame: usize) -> std_mpsc::SyncSender<Job> {
    let (tx, rx) = std_mpsc::sync_channel::<Job>(IN_FLIGHT);
    let rx = Arc::new(Mutex::new(rx));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for i in 0..threads {
        let (rx, checked) = (rx.clone(), checked.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("lakitu-check-{i}"))
            .spawn(move || {
                lower_priority();
                loop {
                    let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((payload, done)) = job else { return };
                    // Collected before the set is locked: the actor takes ids from it while
                    // it stores, and must not wait out a frame's checks.
                    let good: Vec<PostId> = wire::posts_of(&payload, max_frame)
                        .into_iter()
                        .filter(|p| p.verify_signature().is_ok())
                        .map(|p| p.id())
                        .collect();
                    checked.note(good);
                    let _ = done.send(());
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a signature-checking thread");
        }
    }
    tx
}

/// Lower this thread's priority by [`NICER`] (at most to 19). On Linux `getpriority` and
/// `setpriority` with `who = 0` act on the calling thread alone; elsewhere they would act on
/// the whole process, so it is left alone there.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // getpriority's -1 is also a nice value: it is an error only when errno says so, and
        // a thread keeps a new thread's nice value (its creator's) when either call fails.
        // SAFETY: plain integers in and out; errno is this thread's own.
        let now = unsafe {
            *libc::__errno_location() = 0;
            libc::getpriority(libc::PRIO_PROCESS, 0)
        };
        let read = std::io::Error::last_os_error();
        let set = if read.raw_os_error().unwrap_or(0) != 0 {
            Err(read)
        } else {
            // SAFETY: as above.
            let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, (now + NICER).min(19)) };
            if r == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        };
        if let Err(e) = set {
            tracing::debug!(error = %e, "checking thread keeps its priority");
        }
    }
}

/// Pass transport events from `from` to `to`, checking the post signatures of frames with
/// several posts on the way. Those frames go on in the order they came, each once its check
/// is done; every other event goes on at once (a history page's ids should not wait behind the
/// posts of the pages before it; the engine takes frames in any order, as QUIC's streams
/// deliver them). Ends when either side closes.
pub(crate) async fn run(
    mut from: mpsc::Receiver<TransportEvent>,
    to: mpsc::Sender<TransportEvent>,
    checked: Arc<Checked>,
    max_frame: usize,
) {
    let checkers = start_checkers(checked, max_frame);
    let mut checking: VecDeque<(oneshot::Receiver<()>, TransportEvent)> = VecDeque::new();
    loop {
        tokio::select! {
            // A check that never reports (its thread gone) only means the engine checks.
            _ = async {
                match checking.front_mut() {
                    Some((check, _)) => check.await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some((_, ev)) = checking.pop_front()
                    && to.send(ev).await.is_err()
                {
                    return;
                }
            }
            ev = from.recv(), if checking.len() < IN_FLIGHT => {
                let Some(ev) = ev else { break };
                if let TransportEvent::Frame { payload, .. } = &ev
                    && wire::peek_post_count(payload) >= MIN_POSTS
                {
                    let (done, check) = oneshot::channel();
                    // At most IN_FLIGHT jobs exist, so the queue always has room; a full or
                    // closed one (no thread started) leaves the frame to the engine.
                    let _ = checkers.try_send((payload.clone(), done));
                    checking.push_back((check, ev));
                } else if to.send(ev).await.is_err() {
                    return;
                }
            }
        }
    }
    for (check, ev) in checking {
        let _ = check.await;
        if to.send(ev).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::wire::{Message, PushEntry, Relay};
    use crate::id::Identity;
    use crate::post::Post;
    use bytes::Bytes;

    #[test]
    fn ids_left_behind_never_stop_new_ones_being_noted() {
        let checked = Checked::default();
        let id = |i: u32| {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&i.to_be_bytes());
            PostId(b)
        };
        // A full set of ids nobody takes (their frames were dropped before the engine).
        checked.note((0..MAX_CHECKED as u32).map(id));
        checked.note([id(u32::MAX)]);
        assert!(
            checked.take(&id(u32::MAX)),
            "a new id is still noted when full"
        );
        assert!(!checked.take(&id(0)), "the stale ones went");
    }

    fn entries(posts: &[Post]) -> Vec<PushEntry> {
        posts
            .iter()
            .map(|p| PushEntry {
                hops: 1,
                relay: Relay::None,
                post: p.clone(),
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn good_signatures_are_noted_bad_ones_left_to_the_engine_and_batches_keep_their_order() {
        let author = Identity::from_seed([3; 32]);
        let sign = |ts: u64, body: &str| {
            let rust = crate::post::Topic::new("rust").expect("tag");
            Post::sign(author.signing_key(), ts, [rust], body).expect("post")
        };
        let mut first: Vec<Post> = (0..6).map(|i| sign(1_000 + i, "hello")).collect();
        // A forged post: one byte of its author changed, so its signature does not hold.
        let mut forged = first[0].encode();
        forged[1] ^= 1;
        first.push(Post::decode(&forged).expect("well-formed"));
        let second: Vec<Post> = (0..5).map(|i| sign(2_000 + i, "more")).collect();
        let sender = Identity::from_seed([4; 32]).public();
        let batch1 = wire::encode(&sender, 5, &Message::PushBatch(entries(&first)), None);
        let batch2 = wire::encode(&sender, 6, &Message::PushBatch(entries(&second)), None);
        let lone = wire::encode(
            &sender,
            7,
            &Message::Push {
                hops: 1,
                relay: Relay::None,
                post: sign(9, "lone"),
            },
            None,
        );
        let frame = |b: &Vec<u8>| TransportEvent::Frame {
            from: "mem:a".parse().expect("addr"),
            authenticated: None,
            payload: Bytes::from(b.clone()),
        };
        let (in_tx, in_rx) = mpsc::channel(8);
        let (out_tx, mut out_rx) = mpsc::channel(8);
        let checked = Arc::new(Checked::default());
        tokio::spawn(run(in_rx, out_tx, checked.clone(), 1 << 20));
        for b in [&batch1, &lone, &batch2] {
            in_tx.send(frame(b)).await.expect("stage running");
        }
        drop(in_tx);
        let mut out = Vec::new();
        while let Some(ev) = out_rx.recv().await {
            match ev {
                TransportEvent::Frame { payload, .. } => out.push(payload.to_vec()),
                other => panic!("only frames went in, got {other:?}"),
            }
        }
        assert_eq!(
            out.len(),
            3,
            "every frame comes out, and it ends with its input"
        );
        let at = |b: &Vec<u8>| out.iter().position(|o| o == b).expect("frame came out");
        assert!(
            at(&batch1) < at(&batch2),
            "frames with posts keep their order"
        );
        at(&lone);
        for p in first[..6].iter().chain(&second) {
            assert!(checked.take(&p.id()), "a good post is noted");
            assert!(!checked.take(&p.id()), "and taken once");
        }
        assert!(
            !checked.take(&first[6].id()),
            "a forged one is left to the engine"
        );
    }
}
