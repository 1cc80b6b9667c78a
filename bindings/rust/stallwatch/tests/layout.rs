// The #[repr(C)] layouts against the C header: a C program built from
// include/stallwatch/table_abi.h prints every offset and size, and they
// must equal the Rust ones.
use std::mem::size_of;
use std::process::Command;

use stallwatch::{Header, Slot};

// A field's offset without `std::mem::offset_of!` (Rust 1.77), so that the
// test builds with Debian's rustc too: the field's address in an
// uninitialised value, minus the value's.
macro_rules! offset_of {
    ($t:ty, $f:ident) => {{
        let v = std::mem::MaybeUninit::<$t>::uninit();
        let base = v.as_ptr();
        // Safety: addr_of! takes the address without reading the field.
        let field = unsafe { std::ptr::addr_of!((*base).$f) };
        field as usize - base as usize
    }};
}

#[test]
fn every_offset_and_size_matches_the_c_header() {
    let include = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../include");
    let dir = std::env::temp_dir().join(format!("sw-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("layout.c");
    std::fs::write(
        &src,
        r#"#include <stdio.h>
#include <stddef.h>
#include "stallwatch/table_abi.h"
#define F(t, f) printf(#t "." #f " %zu\n", offsetof(struct t, f))
int main(void) {
    printf("header %zu\nslot %zu\n", sizeof(struct stallwatch_table_header), sizeof(struct stallwatch_slot));
    F(stallwatch_table_header, magic); F(stallwatch_table_header, version);
    F(stallwatch_table_header, header_size); F(stallwatch_table_header, slot_size);
    F(stallwatch_table_header, capacity); F(stallwatch_table_header, pid);
    F(stallwatch_table_header, flags); F(stallwatch_table_header, created_unix_ns);
    F(stallwatch_table_header, slots_high_water); F(stallwatch_table_header, group_capacity);
    F(stallwatch_table_header, app_name); F(stallwatch_table_header, reserved1);
    F(stallwatch_slot, progress); F(stallwatch_slot, state); F(stallwatch_slot, tid);
    F(stallwatch_slot, generation); F(stallwatch_slot, group); F(stallwatch_slot, name);
    printf("magic %s\nmax %u\nname %u %u\n", STALLWATCH_TABLE_MAGIC, STALLWATCH_MAX_CAPACITY,
           STALLWATCH_APP_NAME_SIZE, STALLWATCH_WORKER_NAME_SIZE);
    return 0;
}
"#,
    )
    .unwrap();
    let exe = dir.join("layout");
    let cc = Command::new("cc").arg("-I").arg(include).arg(&src).arg("-o").arg(&exe).status().expect("cc");
    assert!(cc.success());
    let out = String::from_utf8(Command::new(&exe).output().unwrap().stdout).unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    let rust = format!(
        "header {}\nslot {}\n\
         stallwatch_table_header.magic {}\nstallwatch_table_header.version {}\n\
         stallwatch_table_header.header_size {}\nstallwatch_table_header.slot_size {}\n\
         stallwatch_table_header.capacity {}\nstallwatch_table_header.pid {}\n\
         stallwatch_table_header.flags {}\nstallwatch_table_header.created_unix_ns {}\n\
         stallwatch_table_header.slots_high_water {}\nstallwatch_table_header.group_capacity {}\n\
         stallwatch_table_header.app_name {}\nstallwatch_table_header.reserved1 {}\n\
         stallwatch_slot.progress {}\nstallwatch_slot.state {}\nstallwatch_slot.tid {}\n\
         stallwatch_slot.generation {}\nstallwatch_slot.group {}\nstallwatch_slot.name {}\n\
         magic {}\nmax {}\nname {} {}\n",
        size_of::<Header>(),
        size_of::<Slot>(),
        offset_of!(Header, magic),
        offset_of!(Header, version),
        offset_of!(Header, header_size),
        offset_of!(Header, slot_size),
        offset_of!(Header, capacity),
        offset_of!(Header, pid),
        offset_of!(Header, flags),
        offset_of!(Header, created_unix_ns),
        offset_of!(Header, slots_high_water),
        offset_of!(Header, group_capacity),
        offset_of!(Header, app_name),
        offset_of!(Header, reserved1),
        offset_of!(Slot, progress),
        offset_of!(Slot, state),
        offset_of!(Slot, tid),
        offset_of!(Slot, generation),
        offset_of!(Slot, group),
        offset_of!(Slot, name),
        std::str::from_utf8(&stallwatch::MAGIC).unwrap(),
        stallwatch::MAX_CAPACITY,
        stallwatch::APP_NAME_SIZE,
        stallwatch::WORKER_NAME_SIZE,
    );
    assert_eq!(rust, out);
}
