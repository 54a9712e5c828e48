//! A private network namespace per test (`ip netns`), deleted on drop, and real packet-level
//! partitions inside it made with `ip rule` blackhole rules between loopback addresses.
//!
//! Everything a test runs through [`Netns::run`] happens on a thread moved into the namespace
//! with `setns(2)`; processes inherit the network namespace of the thread that spawns them, so
//! daemons started there and every CLI call to their control API (the `Node` harness, unchanged)
//! live in the namespace, with no wrapper around the binary.

use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::Mutex;

/// `CLONE_NEWNET` from `<sched.h>`.
const CLONE_NEWNET: i32 = 0x4000_0000;

unsafe extern "C" {
    /// glibc's `setns(2)` wrapper; std links libc, and the crate has no `libc` dependency.
    fn setns(fd: i32, nstype: i32) -> i32;
}

/// Preference of the partition rules: before the `local` table, which [`Netns::new`] moves.
const CUT_PREF: &str = "10";

/// A named network namespace with `lo` up, deleted (`ip netns del`) when dropped, even on panic.
pub struct Netns {
    name: String,
    /// The blackhole rules in place, as `ip rule` selectors, so `heal` removes exactly them.
    cuts: Mutex<Vec<[String; 2]>>,
}

/// Run `ip args`, failing loudly (never skipping) when `ip` is missing or the command fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| {
        panic!("`ip` (iproute2) is needed for the network fault tests and could not run: {e}")
    });
    assert!(
        out.status.success(),
        "ip {} failed (these tests need root and iproute2): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// Create `lakitu-<tag>-<pid>`, bring `lo` up, and move the `local` routing rule from
    /// preference 0 to 100 so partition rules can come before it.
    pub fn new(tag: &str) -> Netns {
        let name = format!("lakitu-{tag}-{}", std::process::id());
        // A namespace left by a killed earlier run with the same pid: remove it first.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        // From here on, drop deletes it.
        let ns = Netns {
            name,
            cuts: Mutex::new(Vec::new()),
        };
        ns.ip(&["link", "set", "lo", "up"]);
        ns.ip(&["rule", "add", "pref", "100", "table", "local"]);
        ns.ip(&["rule", "del", "pref", "0"]);
        ns
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Run `ip -n <name> args`.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// Run `f` on a thread inside the namespace and return its result; a panic in `f` is
    /// raised again here (after `f`'s own values, such as daemons, were dropped there).
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            let handle = s.spawn(|| {
                let file =
                    std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                // SAFETY: setns only reads the descriptor, which `file` keeps open for the call;
                // it changes the network namespace of this thread alone.
                let rc = unsafe { setns(file.as_raw_fd(), CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
                f()
            });
            match handle.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Drop every packet between any address of `a` and any of `b`, both ways, with `ip rule`
    /// blackhole rules ahead of the `local` table.
    pub fn cut(&self, a: &[&str], b: &[&str]) {
        let mut cuts = self.cuts.lock().unwrap_or_else(|e| e.into_inner());
        for x in a {
            for y in b {
                for (from, to) in [(x, y), (y, x)] {
                    self.ip(&[
                        "rule",
                        "add",
                        "pref",
                        CUT_PREF,
                        "from",
                        from,
                        "to",
                        to,
                        "blackhole",
                    ]);
                    cuts.push([from.to_string(), to.to_string()]);
                }
            }
        }
    }

    /// Remove every rule [`Netns::cut`] added.
    pub fn heal(&self) {
        let mut cuts = self.cuts.lock().unwrap_or_else(|e| e.into_inner());
        for [from, to] in cuts.drain(..) {
            self.ip(&[
                "rule",
                "del",
                "pref",
                CUT_PREF,
                "from",
                &from,
                "to",
                &to,
                "blackhole",
            ]);
        }
    }

    /// The namespace's routing rules (`ip rule show`), for failure messages.
    pub fn rules(&self) -> String {
        Command::new("ip")
            .args(["-n", &self.name, "rule", "show"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
