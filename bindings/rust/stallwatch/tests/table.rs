// The table this crate writes, read back as the monitor reads it.
mod common;
use common::*;
use stallwatch::{state, Worker, HEADER_SIZE, SLOT_SIZE};

#[test]
fn init_register_tick_park_unpark_and_release_at_thread_exit() {
    assert_eq!(stallwatch::init("rust-test-app", 8), Ok(()));
    assert_eq!(stallwatch::init("another name", 16), Ok(())); // idempotent
    let b = table_bytes().expect("a table in /proc/self/fd");
    assert_eq!(&b[0..8], b"STALLWTB");
    assert_eq!(u32_at(&b, 8), 1); // version
    assert_eq!(u32_at(&b, 12), 128);
    assert_eq!(u32_at(&b, 16), 64);
    assert_eq!(u32_at(&b, 20), 8); // the first call's capacity
    assert_eq!(u32_at(&b, 24) as i32, std::process::id() as i32);
    assert_eq!(cstr_at(&b, 48, 64), "rust-test-app");
    assert_eq!(b.len() % 4096, 0);

    let tid = std::thread::spawn(|| {
        let w = Worker::register("worker-é-and-a-name-longer-than-39-bytes-in-all");
        assert!(w.is_live());
        for _ in 0..5 {
            w.tick();
        }
        w.park();
        let b = table_bytes().unwrap();
        let slot = HEADER_SIZE; // slot 0
        assert_eq!(u64_at(&b, slot), 5);
        assert_eq!(u32_at(&b, slot + 8), state::PARKED);
        assert_eq!(u32_at(&b, slot + 16), 1); // generation
        let name = cstr_at(&b, slot + 24, 40);
        assert!(name.len() <= 39 && name.starts_with("worker-é-and"));
        assert_eq!(u32_at(&b, 40), 1); // high water
        w.unpark();
        let b = table_bytes().unwrap();
        assert_eq!(u64_at(&b, slot), 6);
        assert_eq!(u32_at(&b, slot + 8), state::RUNNING);
        unsafe { libc::syscall(libc::SYS_gettid) as i32 }
    })
    .join()
    .unwrap();
    let b = table_bytes().unwrap();
    assert_eq!(u32_at(&b, HEADER_SIZE + 8), state::FREE); // released at exit
    assert_eq!(u32_at(&b, HEADER_SIZE + 12) as i32, tid); // identity left as it was

    // Two handles of one thread's worker: the slot lives until both are
    // given back, so the second never writes to a freed slot.
    std::thread::spawn(|| {
        let first = Worker::register("twice");
        let second = Worker::register("twice");
        second.unregister();
        assert_eq!(u32_at(&table_bytes().unwrap(), HEADER_SIZE + 8), state::RUNNING);
        first.tick();
        first.unregister();
        assert_eq!(u32_at(&table_bytes().unwrap(), HEADER_SIZE + 8), state::FREE);
    })
    .join()
    .unwrap();

    // A full table: the ninth worker gets the private sink. Every thread
    // holds its slot until all nine have registered.
    let all = std::sync::Arc::new(std::sync::Barrier::new(9));
    let handles: Vec<_> = (0..9)
        .map(|i| {
            let all = all.clone();
            std::thread::spawn(move || {
                let w = Worker::register(&format!("w{i}"));
                let live = w.is_live();
                all.wait();
                w.tick();
                live
            })
        })
        .collect();
    let live = handles.into_iter().map(|h| h.join().unwrap()).filter(|&l| l).count();
    assert_eq!(live, 8);
    let b = table_bytes().unwrap();
    assert_eq!(u32_at(&b, 40), 8);
    for i in 0..8 {
        assert_eq!(u32_at(&b, HEADER_SIZE + i * SLOT_SIZE + 8), state::FREE);
    }
    assert_eq!(tables_held(), 1);
}
