// A forked child never writes into its parent's table and may make its own.
mod common;
use common::*;

#[test]
fn a_forked_child_writes_nowhere_the_parent_reads_and_gets_a_table_of_its_own() {
    assert_eq!(stallwatch::init("parent", 4), Ok(()));
    let w = stallwatch::Worker::register("main");
    w.tick();
    let before = u64_at(&table_bytes().unwrap(), stallwatch::HEADER_SIZE);
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // The child: ticks go to private memory; then a table of its own.
        for _ in 0..1000 {
            w.tick();
        }
        let ok = tables_held() == 0
            && !stallwatch::is_live()
            && stallwatch::init("child", 2) == Ok(())
            && tables_held() == 1
            && stallwatch::Worker::register("child-main").is_live()
            && cstr_at(&table_bytes().unwrap(), 48, 64) == "child";
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child failed: {status}");
    assert_eq!(u64_at(&table_bytes().unwrap(), stallwatch::HEADER_SIZE), before);
    assert_eq!(cstr_at(&table_bytes().unwrap(), 48, 64), "parent");
}
