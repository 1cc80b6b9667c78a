// STALLWATCH_DISABLE: no table, and every worker a no-op.
mod common;

#[test]
fn disabled_makes_no_table_and_workers_write_nowhere() {
    std::env::set_var("STALLWATCH_DISABLE", "1");
    assert_eq!(stallwatch::init("off", 0), Err(stallwatch::Error::Disabled));
    let w = stallwatch::Worker::register("nobody-reads-me");
    assert!(!w.is_live());
    w.tick();
    w.park();
    w.unpark();
    assert_eq!(common::tables_held(), 0);
    assert_eq!(stallwatch::init("again", 0), Err(stallwatch::Error::Disabled));
    assert_eq!(stallwatch::init("x", stallwatch::MAX_CAPACITY + 1), Err(stallwatch::Error::Disabled));
}
