// The same sequence of calls through the C shim and through this crate
// gives the same table, byte for byte, apart from what differs by nature:
// the creation time, the pid and the tids.
mod common;

use std::process::Command;
use std::sync::mpsc;
use stallwatch::{Worker, HEADER_SIZE, SLOT_SIZE};

fn c_table() -> Vec<u8> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../..");
    let dir = std::env::temp_dir().join(format!("sw-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("sequence");
    let status = Command::new("cc")
        .args(["-O2", "-pthread", "-I"])
        .arg(format!("{root}/include"))
        .arg("-I")
        .arg(format!("{root}/src"))
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/sequence.c"))
        .arg(format!("{root}/src/shim/shim.c"))
        .arg(format!("{root}/src/shim/compensation.c"))
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("cc");
    assert!(status.success(), "the C sequence did not build");
    let out = Command::new(&exe).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success());
    let hex = String::from_utf8(out.stdout).unwrap();
    let hex = hex.trim();
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

fn rust_table() -> Vec<u8> {
    assert_eq!(stallwatch::init("conformance", 4), Ok(()));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut releases = Vec::new();
    let mut handles = Vec::new();
    for step in 0..3 {
        let done = done_tx.clone();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        releases.push(release_tx);
        handles.push(std::thread::spawn(move || {
            match step {
                0 => {
                    let w = Worker::register("alpha");
                    for _ in 0..3 {
                        w.tick();
                    }
                    w.park();
                    done.send(()).unwrap();
                    let _ = release_rx.recv();
                }
                1 => {
                    let w = Worker::register("beta-é-a-name-that-is-longer-than-39-bytes");
                    w.tick();
                    w.park();
                    w.unpark();
                    done.send(()).unwrap();
                    let _ = release_rx.recv();
                }
                _ => {
                    let w = Worker::register("gamma");
                    w.tick();
                    w.unregister();
                    done.send(()).unwrap();
                }
            }
        }));
        done_rx.recv().unwrap();
    }
    let bytes = common::table_bytes().unwrap();
    drop(releases);
    for h in handles {
        h.join().unwrap();
    }
    bytes
}

// Zeroes what differs by nature: created_unix_ns, pid, each slot's tid.
fn comparable(mut b: Vec<u8>) -> Vec<u8> {
    b[24..28].fill(0);
    b[32..40].fill(0);
    for i in 0..4 {
        let tid = HEADER_SIZE + i * SLOT_SIZE + 12;
        b[tid..tid + 4].fill(0);
    }
    b
}

#[test]
fn the_crate_writes_the_table_the_c_shim_writes() {
    let c = c_table();
    let rust = rust_table();
    assert_eq!(c.len(), rust.len());
    assert_eq!(&c[0..8], b"STALLWTB");
    let (c, rust) = (comparable(c), comparable(rust));
    for (i, (a, b)) in c.iter().zip(rust.iter()).enumerate() {
        assert_eq!(a, b, "byte {i} differs: C {a:#04x}, Rust {b:#04x}");
    }
    // And the sequence left what it should: alpha parked at 3, beta running
    // at 2, gamma released (its identity left in place), high water 3.
    assert_eq!(common::u32_at(&c, 40), 3);
    assert_eq!(common::u64_at(&c, HEADER_SIZE), 3);
    assert_eq!(common::u32_at(&c, HEADER_SIZE + 8), stallwatch::state::PARKED);
    assert_eq!(common::u64_at(&c, HEADER_SIZE + SLOT_SIZE), 2);
    assert_eq!(common::u32_at(&c, HEADER_SIZE + SLOT_SIZE + 8), stallwatch::state::RUNNING);
    assert_eq!(common::u32_at(&c, HEADER_SIZE + 2 * SLOT_SIZE + 8), stallwatch::state::FREE);
    assert_eq!(common::cstr_at(&c, HEADER_SIZE + 2 * SLOT_SIZE + 24, 40), "gamma");
}
