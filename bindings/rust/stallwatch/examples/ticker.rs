// Two workers, one ticking and one parked, for `stallwatch status PID`;
// runs until its standard input closes.
fn main() {
    stallwatch::init("rust-ticker", 0).expect("table");
    std::thread::Builder::new()
        .name("ticking".into())
        .spawn(|| {
            let w = stallwatch::Worker::register("ticking");
            loop {
                w.tick();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
        .unwrap();
    std::thread::spawn(|| {
        let w = stallwatch::Worker::register("idle");
        w.park();
        loop {
            std::thread::park();
        }
    });
    println!("ready pid={}", std::process::id());
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
        line.clear();
    }
}
