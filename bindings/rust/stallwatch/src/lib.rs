//! stallwatch's progress table, written from Rust straight from
//! `docs/table-format.md`: no C shim linked, no bindgen.
//!
//! A process calls [`init`] once; each worker thread calls
//! [`Worker::register`] once, then [`Worker::tick`] after every unit of work
//! and [`Worker::park`] / [`Worker::unpark`] around its waits for new work.
//! The `stallwatch` monitor reads the table from outside the process and
//! reports workers whose progress stops while they are not parked.
//!
//! The guarantees are the C shim's:
//! - `tick`, `park` and `unpark` are inline stores: no call, no lock, no
//!   system call, no atomic read-modify-write.
//! - [`Worker::register`] always returns a worker. When the table is
//!   disabled (`STALLWATCH_DISABLE=1`), not initialised, failed, or full, the
//!   worker writes to a private per-thread slot that nobody reads.
//! - A worker is released when its thread exits.
//! - A forked child never writes into its parent's table; the table is not
//!   inherited across `exec` (the memfd is close-on-exec).

use std::cell::Cell;
use std::ffi::CString;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering};

#[cfg(feature = "tokio")]
pub mod tokio_runtime;

/// The eight bytes at offset 0 of a published table.
pub const MAGIC: [u8; 8] = *b"STALLWTB";
/// The format version this crate writes.
pub const VERSION: u32 = 1;
/// Link name of the memfd (the monitor looks for `/memfd:stallwatch (deleted)`).
pub const MEMFD_NAME: &str = "stallwatch";
pub const HEADER_SIZE: usize = 128;
pub const SLOT_SIZE: usize = 64;
pub const APP_NAME_SIZE: usize = 64;
pub const WORKER_NAME_SIZE: usize = 40;
/// Largest capacity a writer may declare.
pub const MAX_CAPACITY: u32 = 65536;
/// Slots when [`init`] is given 0.
pub const DEFAULT_CAPACITY: u32 = 256;

/// Slot states (docs/table-format.md, section 4).
pub mod state {
    pub const FREE: u32 = 0;
    pub const CLAIMED: u32 = 1;
    pub const RUNNING: u32 = 2;
    pub const PARKED: u32 = 3;
}

/// The table header, as laid out at offset 0 (section 3.2).
#[repr(C)]
pub struct Header {
    pub magic: AtomicU64,
    pub version: u32,
    pub header_size: u32,
    pub slot_size: u32,
    pub capacity: u32,
    pub pid: i32,
    pub flags: u32,
    pub created_unix_ns: u64,
    pub slots_high_water: AtomicU32,
    /// Version 2's group records; this crate writes version 1: always 0.
    pub group_capacity: u32,
    pub app_name: [u8; APP_NAME_SIZE],
    pub reserved1: [u64; 2],
}

/// One worker's slot: one cache line, written only by its owner thread
/// (except the claim) (section 3.3).
#[repr(C)]
pub struct Slot {
    pub progress: AtomicU64,
    pub state: AtomicU32,
    pub tid: AtomicI32,
    pub generation: AtomicU32,
    /// Version 2's group of the worker; always 0 in the version 1 this crate writes.
    pub group: AtomicU32,
    pub name: [u8; WORKER_NAME_SIZE],
}

const _: () = assert!(std::mem::size_of::<Header>() == HEADER_SIZE);
const _: () = assert!(std::mem::size_of::<Slot>() == SLOT_SIZE);

/// Why [`init`] made no table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// `STALLWATCH_DISABLE` is set (the C shim's `-ECANCELED`).
    Disabled,
    /// A capacity over [`MAX_CAPACITY`] (`-EINVAL`).
    InvalidCapacity,
    /// A system call failed with this errno (memfd_create, ftruncate,
    /// sealing, mmap).
    Os(i32),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Disabled => write!(f, "STALLWATCH_DISABLE is set: no table"),
            Error::InvalidCapacity => write!(f, "capacity over {MAX_CAPACITY}"),
            Error::Os(e) => write!(f, "{}", std::io::Error::from_raw_os_error(*e)),
        }
    }
}

impl std::error::Error for Error {}

// ---- process-wide state ------------------------------------------------------

/// The table this process writes. `BASE` is null while there is none.
static BASE: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static SIZE: AtomicU64 = AtomicU64::new(0);
static CAPACITY: AtomicU32 = AtomicU32::new(0);
static FD: AtomicI32 = AtomicI32::new(-1);
/// What init decided, kept until a fork: 0 never tried, 1 a table,
/// 2 disabled, 3 invalid capacity, -errno a system call failed.
static INIT_RESULT: AtomicI32 = AtomicI32::new(0);
/// Serialises init. A spin lock, not a Mutex: a forked child resets it with
/// one store, whoever held it in the parent.
static INIT_LOCK: AtomicBool = AtomicBool::new(false);
static ATFORK: AtomicBool = AtomicBool::new(false);

fn encode(r: Result<(), Error>) -> i32 {
    match r {
        Ok(()) => 1,
        Err(Error::Disabled) => 2,
        Err(Error::InvalidCapacity) => 3,
        Err(Error::Os(e)) => -e.max(1),
    }
}

fn decode(v: i32) -> Option<Result<(), Error>> {
    match v {
        0 => None,
        1 => Some(Ok(())),
        2 => Some(Err(Error::Disabled)),
        3 => Some(Err(Error::InvalidCapacity)),
        e => Some(Err(Error::Os(-e))),
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

fn disabled_by_env() -> bool {
    match std::env::var_os("STALLWATCH_DISABLE") {
        Some(v) => !v.is_empty() && v != "0",
        None => false,
    }
}

/// Copies at most `dst.len() - 1` bytes of `src`, never cutting a UTF-8
/// character, and zero-fills the rest.
fn copy_name(dst: *mut u8, size: usize, src: &str) {
    let mut n = src.len().min(size - 1);
    while n > 0 && !src.is_char_boundary(n) {
        n -= 1;
    }
    unsafe {
        std::ptr::write_bytes(dst, 0, size);
        std::ptr::copy_nonoverlapping(src.as_ptr(), dst, n);
    }
}

fn now_unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn create_table(app_name: &str, capacity: u32) -> Result<(), Error> {
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let bytes = HEADER_SIZE + capacity as usize * SLOT_SIZE;
    let size = (bytes + page - 1) / page * page;
    let name = CString::new(MEMFD_NAME).unwrap();
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(Error::Os(errno()));
    }
    let fail = |e: i32| {
        unsafe { libc::close(fd) };
        Err(Error::Os(e))
    };
    if unsafe { libc::ftruncate(fd, size as libc::off_t) } != 0 {
        return fail(errno());
    }
    // As the C shim: no table rather than an unsealed one (section 2.1).
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    if unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) } != 0 {
        return fail(errno());
    }
    let base = unsafe {
        libc::mmap(std::ptr::null_mut(), size, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0)
    };
    if base == libc::MAP_FAILED {
        return fail(errno());
    }
    let base = base.cast::<u8>();
    // Every field but the magic with plain stores, then the magic as one
    // release store of the aligned word (section 5.2).
    unsafe {
        let h = base.cast::<Header>();
        std::ptr::addr_of_mut!((*h).version).write(VERSION);
        std::ptr::addr_of_mut!((*h).header_size).write(HEADER_SIZE as u32);
        std::ptr::addr_of_mut!((*h).slot_size).write(SLOT_SIZE as u32);
        std::ptr::addr_of_mut!((*h).capacity).write(capacity);
        std::ptr::addr_of_mut!((*h).pid).write(libc::getpid());
        std::ptr::addr_of_mut!((*h).flags).write(0);
        std::ptr::addr_of_mut!((*h).created_unix_ns).write(now_unix_ns());
        copy_name(std::ptr::addr_of_mut!((*h).app_name).cast::<u8>(), APP_NAME_SIZE, app_name);
        (*h).magic.store(u64::from_ne_bytes(MAGIC), Ordering::Release);
    }
    FD.store(fd, Ordering::Relaxed);
    SIZE.store(size as u64, Ordering::Relaxed);
    CAPACITY.store(capacity, Ordering::Relaxed);
    BASE.store(base, Ordering::Release);
    Ok(())
}

/// In a forked child the mapping is still shared with the parent: swap it
/// for private zeroed memory at the same address (workers the child still
/// holds stay valid but write where nobody reads), close the inherited fd,
/// and forget the table, so that the child may make one of its own.
extern "C" fn after_fork_child() {
    let base = BASE.load(Ordering::Relaxed);
    let size = SIZE.load(Ordering::Relaxed) as usize;
    if !base.is_null() {
        unsafe {
            libc::mmap(
                base.cast(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            );
        }
    }
    let fd = FD.swap(-1, Ordering::Relaxed);
    if fd >= 0 {
        unsafe { libc::close(fd) };
    }
    BASE.store(std::ptr::null_mut(), Ordering::Release);
    SIZE.store(0, Ordering::Relaxed);
    CAPACITY.store(0, Ordering::Relaxed);
    INIT_RESULT.store(0, Ordering::Release);
    // Another thread of the parent may have held it at the fork.
    INIT_LOCK.store(false, Ordering::Release);
    let _ = CURRENT.try_with(|c| c.set(std::ptr::null()));
}

/// Creates this process's progress table, named `app_name` (truncated to 63
/// bytes) with `capacity` slots (0: [`DEFAULT_CAPACITY`]). Idempotent: later
/// calls return the first call's result. After an error every worker is a
/// no-op.
pub fn init(app_name: &str, capacity: u32) -> Result<(), Error> {
    while INIT_LOCK.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        std::hint::spin_loop();
    }
    if let Some(r) = decode(INIT_RESULT.load(Ordering::Acquire)) {
        INIT_LOCK.store(false, Ordering::Release);
        return r;
    }
    let r = if disabled_by_env() {
        Err(Error::Disabled)
    } else if capacity > MAX_CAPACITY {
        Err(Error::InvalidCapacity)
    } else {
        if !ATFORK.swap(true, Ordering::Relaxed) {
            unsafe { libc::pthread_atfork(None, None, Some(after_fork_child)) };
        }
        create_table(app_name, if capacity == 0 { DEFAULT_CAPACITY } else { capacity })
    };
    INIT_RESULT.store(encode(r), Ordering::Release);
    INIT_LOCK.store(false, Ordering::Release);
    r
}

/// Whether this process has a live table.
pub fn is_live() -> bool {
    !BASE.load(Ordering::Acquire).is_null()
}

// ---- workers -------------------------------------------------------------------

thread_local! {
    /// The calling thread's slot in the table, or null.
    static CURRENT: Cell<*const Slot> = const { Cell::new(std::ptr::null()) };
    /// How many `Worker`s `register` handed out for CURRENT: `unregister`
    /// releases the slot only with the last, so that no other handle (the
    /// tokio integration's, say) is left writing to a freed slot.
    static HANDLES: Cell<usize> = const { Cell::new(0) };
    /// Releases the thread's slot when the thread exits.
    static RELEASE_AT_EXIT: ReleaseAtExit = const { ReleaseAtExit };
    /// Where a worker without a slot writes: nobody reads it.
    static SINK: Slot = const {
        Slot {
            progress: AtomicU64::new(0),
            state: AtomicU32::new(state::RUNNING),
            tid: AtomicI32::new(0),
            generation: AtomicU32::new(0),
            group: AtomicU32::new(0),
            name: [0; WORKER_NAME_SIZE],
        }
    };
}

struct ReleaseAtExit;

impl Drop for ReleaseAtExit {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| {
            let slot = c.replace(std::ptr::null());
            if owns(slot) {
                unsafe { (*slot).state.store(state::FREE, Ordering::Release) };
            }
        });
    }
}

/// Whether `slot` is a slot of the live table.
fn owns(slot: *const Slot) -> bool {
    let base = BASE.load(Ordering::Acquire);
    if slot.is_null() || base.is_null() {
        return false;
    }
    let at = slot as usize;
    let first = base as usize + HEADER_SIZE;
    let end = first + CAPACITY.load(Ordering::Relaxed) as usize * SLOT_SIZE;
    at >= first && at < end && (at - first) % SLOT_SIZE == 0
}

fn gettid() -> i32 {
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

fn claim(name: &str) -> *const Slot {
    let base = BASE.load(Ordering::Acquire);
    if base.is_null() {
        return std::ptr::null();
    }
    let capacity = CAPACITY.load(Ordering::Relaxed);
    let header = base.cast::<Header>();
    for i in 0..capacity {
        let slot_ptr = unsafe { base.add(HEADER_SIZE + i as usize * SLOT_SIZE).cast::<Slot>() };
        let slot = unsafe { &*slot_ptr };
        if slot.state.load(Ordering::Relaxed) != state::FREE
            || slot
                .state
                .compare_exchange(state::FREE, state::CLAIMED, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            continue;
        }
        // Ours: identity, then the high-water mark, then the state (5.3).
        slot.tid.store(gettid(), Ordering::Relaxed);
        slot.group.store(0, Ordering::Relaxed);
        // The name is plain bytes: written through the table's own pointer,
        // never through the shared reference used for the atomics.
        copy_name(unsafe { std::ptr::addr_of_mut!((*slot_ptr).name).cast::<u8>() }, WORKER_NAME_SIZE, name);
        slot.progress.store(0, Ordering::Relaxed);
        let generation = slot.generation.load(Ordering::Relaxed).wrapping_add(1);
        slot.generation.store(generation, Ordering::Relaxed);
        let hw = unsafe { &(*header).slots_high_water };
        let mut cur = hw.load(Ordering::Relaxed);
        while cur < i + 1 {
            match hw.compare_exchange_weak(cur, i + 1, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        slot.state.store(state::RUNNING, Ordering::Release);
        return slot;
    }
    std::ptr::null() // table full
}

/// A registered worker: the calling thread's slot (or the private sink).
/// Not `Send`: only its own thread may tick it.
pub struct Worker {
    slot: *const Slot,
    _not_send: PhantomData<*const ()>,
}

impl Worker {
    /// Registers the calling thread as a worker named `name` (truncated to
    /// 39 bytes). On a thread that is already registered, returns the same
    /// worker. Never fails: see the crate's guarantees.
    pub fn register(name: &str) -> Worker {
        let mine = CURRENT.with(|c| c.get());
        if owns(mine) {
            HANDLES.with(|h| h.set(h.get() + 1));
            return Worker { slot: mine, _not_send: PhantomData };
        }
        let slot = claim(name);
        if slot.is_null() {
            return Worker { slot: SINK.with(|s| s as *const Slot), _not_send: PhantomData };
        }
        CURRENT.with(|c| c.set(slot));
        HANDLES.with(|h| h.set(1));
        RELEASE_AT_EXIT.with(|_| {}); // arms the release at thread exit
        Worker { slot, _not_send: PhantomData }
    }

    /// Whether this worker has a slot in the shared table (false: the
    /// private no-op slot).
    pub fn is_live(&self) -> bool {
        owns(self.slot)
    }

    /// One unit of progress: a relaxed load and store, never a locked
    /// read-modify-write (section 5.4).
    #[inline(always)]
    pub fn tick(&self) {
        let p = unsafe { &(*self.slot).progress };
        p.store(p.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }

    /// About to wait for new work: a parked worker is never stalled.
    #[inline(always)]
    pub fn park(&self) {
        unsafe { (*self.slot).state.store(state::PARKED, Ordering::Release) };
    }

    /// Has work again; counts as progress.
    #[inline(always)]
    pub fn unpark(&self) {
        self.tick();
        unsafe { (*self.slot).state.store(state::RUNNING, Ordering::Release) };
    }

    /// Gives this handle back. The slot is released when the thread's last
    /// handle is given back (`register` on a registered thread hands out
    /// another handle to the same slot), and at thread exit in any case.
    pub fn unregister(self) {
        CURRENT.with(|c| {
            if c.get() != self.slot || !owns(self.slot) {
                return;
            }
            let left = HANDLES.with(|h| {
                let n = h.get().saturating_sub(1);
                h.set(n);
                n
            });
            if left == 0 {
                unsafe { (*self.slot).state.store(state::FREE, Ordering::Release) };
                c.set(std::ptr::null());
            }
        });
    }
}
