// Helpers shared by the integration tests (each test file is a process of
// its own: init happens once per process).
#![allow(dead_code)]

use std::fs;

/// The bytes of this process's table, read back through /proc/self/fd as the
/// monitor reads them (a new file description, pread from offset 0).
pub fn table_bytes() -> Option<Vec<u8>> {
    for entry in fs::read_dir("/proc/self/fd").ok()? {
        let path = entry.ok()?.path();
        if fs::read_link(&path).ok()?.to_string_lossy() == "/memfd:stallwatch (deleted)" {
            return fs::read(&path).ok();
        }
    }
    None
}

pub fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().unwrap())
}

pub fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(b[off..off + 8].try_into().unwrap())
}

pub fn cstr_at(b: &[u8], off: usize, size: usize) -> String {
    let field = &b[off..off + size];
    let end = field.iter().position(|&c| c == 0).unwrap_or(size);
    String::from_utf8_lossy(&field[..end]).into_owned()
}

pub fn tables_held() -> usize {
    fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    fs::read_link(e.path()).map(|l| l.to_string_lossy() == "/memfd:stallwatch (deleted)").unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}
