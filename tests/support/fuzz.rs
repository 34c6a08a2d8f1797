//! Shared pieces of the fuzz tests: an allocation-counting allocator, byte mutations and the
//! proptest configuration.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proptest::prelude::*;
use proptest::sample::Index;

/// The test binary's allocator: `System`, counting the live bytes of each thread.
pub struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // `try_with`: a thread being torn down has no counters any more; its allocations are not ours.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded to `System` with the same arguments; counting touches only
// const-initialised thread-locals without destructors, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Runs `f` and returns its result with the most bytes it had allocated at once on this thread
/// (beyond what was live before).
pub fn peak_bytes<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    let peak = PEAK.with(Cell::get);
    (out, (peak - start).max(0) as usize)
}

/// The allocation allowed for decoding `len` bytes: linear in the input (decoded values take
/// more room than their encoding, e.g. a 4-byte contribution becomes a ~100-byte view in a `Vec`
/// that doubles), plus a constant for error messages and buffers. A length or count taken from
/// the input and trusted would exceed it by orders of magnitude.
pub fn allowed_bytes(len: usize) -> usize {
    256 * len + (1 << 20)
}

/// Asserts that `f` stays within [`allowed_bytes`] of `input_len`, and returns its result.
pub fn within_allowance<T>(input_len: usize, f: impl FnOnce() -> T) -> T {
    let (out, peak) = peak_bytes(f);
    assert!(
        peak <= allowed_bytes(input_len),
        "allocated {peak} bytes at once for {input_len} bytes of input (allowed {})",
        allowed_bytes(input_len)
    );
    out
}

/// The proptest configuration: proptest's defaults (256 cases, overridden by `PROPTEST_CASES`),
/// or `cases` when the variable is not set.
pub fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    c
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Cut the input here.
    Truncate(Index),
    /// XOR one byte.
    Flip(Index, u8),
    /// Remove up to this many bytes.
    Delete(Index, u8),
    /// Repeat a short slice several times in place.
    Repeat(Index, u8, u8),
    /// Insert a dictionary entry (a token of the format, a huge length, odd unicode).
    Insert(Index, Index),
    /// Insert arbitrary bytes.
    InsertBytes(Index, Vec<u8>),
}

/// Edits: truncation, byte flips, deletions, repetitions and insertions of tokens or bytes.
pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let one = prop_oneof![
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (any::<Index>(), 1..16u8).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<Index>(), 1..8u8, 2..64u8).prop_map(|(i, n, k)| Mutation::Repeat(i, n, k)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, d)| Mutation::Insert(i, d)),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Mutation::InsertBytes(i, b)),
    ];
    prop::collection::vec(one, 0..4)
}

/// Applies `edits` to `bytes`; `dict` supplies the tokens of [`Mutation::Insert`].
pub fn mutate(mut bytes: Vec<u8>, edits: &[Mutation], dict: &[&[u8]]) -> Vec<u8> {
    for edit in edits {
        let at = |i: &Index, len: usize| i.index(len + 1);
        match edit {
            Mutation::Truncate(i) => bytes.truncate(at(i, bytes.len())),
            Mutation::Flip(i, x) if !bytes.is_empty() => {
                let i = i.index(bytes.len());
                bytes[i] ^= x;
            }
            Mutation::Flip(..) => {}
            Mutation::Delete(i, n) => {
                let from = at(i, bytes.len());
                let to = (from + usize::from(*n)).min(bytes.len());
                bytes.drain(from..to);
            }
            Mutation::Repeat(i, n, k) => {
                let from = at(i, bytes.len());
                let to = (from + usize::from(*n)).min(bytes.len());
                let piece = bytes[from..to].to_vec();
                let copies = piece.repeat(usize::from(*k));
                bytes.splice(to..to, copies);
            }
            Mutation::Insert(i, d) if !dict.is_empty() => {
                let pos = at(i, bytes.len());
                bytes.splice(pos..pos, dict[d.index(dict.len())].iter().copied());
            }
            Mutation::Insert(..) => {}
            Mutation::InsertBytes(i, b) => {
                let pos = at(i, bytes.len());
                bytes.splice(pos..pos, b.iter().copied());
            }
        }
    }
    bytes
}

/// Varints that claim huge lengths or counts (4 GiB, 2^63, u64::MAX) or are malformed
/// (eleven bytes, unterminated), for the protobuf formats.
pub const VARINT_DICT: &[&[u8]] = &[
    &[0x80, 0x80, 0x80, 0x80, 0x10],
    &[0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    &[
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ],
    &[0xff, 0xff],
    &[0x00],
    &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0x12, 0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0x0b],
    &[0x0c],
    &[0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b],
];
