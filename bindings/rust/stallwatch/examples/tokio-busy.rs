// One tokio worker kept busy by a chain of short instrumented tasks that
// never lets it park (it must not be reported), then one task stuck in a
// blocking sleep inside a poll (it must be). Run under `stallwatch run`.
use std::time::{Duration, Instant};

use stallwatch::tokio_runtime::{self, BuilderExt};

fn busy_chain(until: Instant) {
    if Instant::now() >= until {
        return;
    }
    tokio_runtime::spawn(async move {
        let t = Instant::now();
        while t.elapsed() < Duration::from_micros(50) {}
        busy_chain(until);
    });
}

#[inline(never)]
fn stuck_in_poll() {
    std::thread::sleep(Duration::from_millis(800));
}

fn main() {
    stallwatch::init("tokio-busy", 0).expect("table");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .stallwatch("busy-worker")
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(300)).await; // the worker parks once: registered
        println!("busy");
        let until = Instant::now() + Duration::from_secs(2);
        tokio::spawn(async move { busy_chain(until) });
        tokio::time::sleep(Duration::from_millis(2300)).await;
        println!("stuck");
        tokio::spawn(async { stuck_in_poll() }).await.unwrap();
        // The worker parks: the monitor sees the stall end before the exit.
        tokio::time::sleep(Duration::from_millis(300)).await;
        println!("done");
    });
}
