// Probes for the assembly check (tests/rust/CMakeLists.txt): each exported
// function is one call of the crate's hot path, built with --release, and
// the test reads its disassembly as it reads the C shim's
// (tests/asm/check_disasm.cmake): tick, park and unpark must be plain loads
// and stores, with no lock prefix and no call; the control must show a lock.
use std::sync::atomic::{AtomicU64, Ordering};

use stallwatch::Worker;

#[no_mangle]
#[inline(never)]
pub extern "C" fn sw_rust_probe_tick(w: &Worker) {
    w.tick();
}

#[no_mangle]
#[inline(never)]
pub extern "C" fn sw_rust_probe_park(w: &Worker) {
    w.park();
}

#[no_mangle]
#[inline(never)]
pub extern "C" fn sw_rust_probe_unpark(w: &Worker) {
    w.unpark();
}

/// The negative control: an atomic read-modify-write, which x86-64 locks.
#[no_mangle]
#[inline(never)]
pub extern "C" fn sw_rust_probe_control(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn main() {
    // Called through a volatile read of their addresses, so that none of
    // them is inlined or folded away.
    let w = Worker::register("probe");
    let probes: [extern "C" fn(&Worker); 3] = [sw_rust_probe_tick, sw_rust_probe_park, sw_rust_probe_unpark];
    for p in unsafe { std::ptr::read_volatile(&probes) } {
        p(&w);
    }
    let c = AtomicU64::new(0);
    let control: extern "C" fn(&AtomicU64) = sw_rust_probe_control;
    let control = unsafe { std::ptr::read_volatile(&control) };
    control(&c);
    println!("{}", c.load(Ordering::Relaxed));
}
