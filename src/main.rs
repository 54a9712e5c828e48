//! The `lakitu` binary: parse the command line and hand over to [`lakitu::cli`].

// jemalloc, not glibc's malloc: sled's threads free pages the actor allocated (and the
// other way round), and glibc then serialises both on one arena's lock. During a history
// sync the actor waited there about 40% of the time (an off-CPU profile: `_int_free` in
// `__lll_lock_wait_private`).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    lakitu::cli::main()
}
