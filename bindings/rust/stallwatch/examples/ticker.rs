// Two workers, one ticking and one parked, for `stallwatch status PID`;
// prints "ready pid=N" once both are registered (and the idle one parked),
// and runs until its standard input closes.
use std::sync::{Arc, Barrier};

fn main() {
    stallwatch::init("rust-ticker", 0).expect("table");
    let registered = Arc::new(Barrier::new(3));
    let r = registered.clone();
    std::thread::Builder::new()
        .name("ticking".into())
        .spawn(move || {
            let w = stallwatch::Worker::register("ticking");
            r.wait();
            loop {
                w.tick();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
        .unwrap();
    let r = registered.clone();
    std::thread::spawn(move || {
        let w = stallwatch::Worker::register("idle");
        w.park();
        r.wait();
        loop {
            std::thread::park();
        }
    });
    registered.wait();
    println!("ready pid={}", std::process::id());
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
        line.clear();
    }
}
