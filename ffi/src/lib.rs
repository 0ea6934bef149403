//! # libping32dlp's C ABI
//!
//! Every `extern "C"` function of libping32dlp lives in this crate; the core (`ping32dlp`) stays
//! safe Rust. The header `include/ping32dlp.h` is generated from these sources by cbindgen
//! (`ffi/cbindgen.toml`); a unit test regenerates it and fails on any difference, and
//! `ffi/symbols.txt` lists the exported symbols, checked against the built library.
//!
//! ## Conventions (the ABI contract; README "C API conventions" says the same)
//!
//! * Every name starts with `ping32dlp_` (`PING32DLP_` for constants).
//! * Objects are opaque handles made by `_new` (or `_build`, `_load`, `_open`) and released by
//!   `_free`; `_free(NULL)` does nothing.
//! * Arguments go handle first, then inputs, then outputs. Byte buffers are `(pointer, size_t)`;
//!   a NULL pointer with size 0 is an empty buffer. Names, paths and other short strings are
//!   NUL-terminated UTF-8 (malformed UTF-8 is replaced, never rejected).
//! * Fallible functions return a [`ping32dlp_result`]; `PING32DLP_OK` is 0, and
//!   [`ping32dlp_result_str`] names every code. Outputs are written only on success, except an
//!   `error_out`, which is written only on the error it describes (and left untouched
//!   otherwise). Every function's doc ends with an `Ownership:` line saying what the caller
//!   owns, what is borrowed and for how long, and what the library keeps.
//!   [`ping32dlp_last_error`] gives the calling thread's last error in words.
//! * Accessors (`_count`, `_name`, ...) return values directly: a count of 0, an empty string or
//!   NULL for a NULL handle or an index out of range. Where a value could be read as "safe",
//!   a NULL handle gives the cautious one: BLOCK for an action, 100 for a risk, HIGH for a
//!   confidence, true for an extension mismatch; never ALLOW.
//! * Strings handed out are [`ping32dlp_str`] (pointer and length, borrowed from a handle, valid
//!   as long as the docs say) or `char *` JSON documents owned by the caller and released with
//!   [`ping32dlp_string_free`].
//! * No panic ever crosses the boundary: a bug inside the library returns `PING32DLP_ERR_PANIC`
//!   (free the handle it happened on; others are unaffected). The host process is never aborted.
//! * Threads: an engine, a policy and a workflow are immutable or internally synchronised and
//!   may be shared by any number of threads. A scanner is used by one thread at a time (a second
//!   thread gets `PING32DLP_ERR_BUSY`, never undefined behaviour); its report stays valid until
//!   the scanner's next scan or its free.
//! * Hostile input is not an error: what could not be read is in the report's unscannable list.
//! * Sensitive values: findings carry masked values; the raw value has its own accessor
//!   ([`ping32dlp_finding_value`]) and JSON shows raw values only when asked.

// C callers cannot see Rust's safe/unsafe split: every exported function takes raw pointers,
// checks them for NULL and documents what they must point to. Marking each one `unsafe fn`
// would add nothing for them.
#![allow(clippy::not_unsafe_ptr_arg_deref)]
#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

mod agent;
mod engine;
mod policy;
mod scan;
mod workflow;

pub use engine::*;
pub use policy::*;
pub use scan::*;
pub use workflow::*;

/// Major version of the library (the SONAME's number: `libping32dlp.so.0`).
pub const PING32DLP_VERSION_MAJOR: u32 = 0;
/// Minor version.
pub const PING32DLP_VERSION_MINOR: u32 = 1;
/// Patch version.
pub const PING32DLP_VERSION_PATCH: u32 = 0;

/// Result of a fallible call. Codes are grouped by hundreds and never renumbered.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ping32dlp_result {
    /// Success.
    PING32DLP_OK = 0,
    /// A required pointer argument was NULL.
    PING32DLP_ERR_NULL = 100,
    /// An argument is not acceptable: an unknown field or flag, a reserved `flags` that is not 0.
    PING32DLP_ERR_INVALID_ARGUMENT = 101,
    /// The scanner is being used by another thread right now (a scanner is one thread's).
    PING32DLP_ERR_BUSY = 102,
    /// A rules file, rules text or dictionary is wrong; the `ping32dlp_error` says where.
    PING32DLP_ERR_RULES = 200,
    /// A policy file is wrong or names unknown detectors; the `ping32dlp_error` says where.
    PING32DLP_ERR_POLICY = 201,
    /// The bytes are not a saved engine of this library version, or are damaged (the last
    /// error says which: another version, a checksum mismatch, an inconsistent body).
    PING32DLP_ERR_ENGINE_IMAGE = 202,
    /// A file or directory of the state could not be read or written.
    PING32DLP_ERR_IO = 300,
    /// The audit database failed.
    PING32DLP_ERR_DATABASE = 301,
    /// No approval (or record) with that id.
    PING32DLP_ERR_NOT_FOUND = 302,
    /// The approval is no longer pending (decided, expired, closed).
    PING32DLP_ERR_ALREADY_DECIDED = 303,
    /// Not allowed: the approver is not one of the request's approvers.
    PING32DLP_ERR_FORBIDDEN = 304,
    /// Stored evidence no longer matches its SHA-256.
    PING32DLP_ERR_TAMPERED = 305,
    /// A bug inside the library was caught at the boundary. Free the handle it happened on.
    PING32DLP_ERR_PANIC = 900,
}

use ping32dlp_result::*;

/// A borrowed string: `len` bytes of UTF-8 at `data` (not NUL-terminated; print it with
/// `printf("%.*s", (int)s.len, s.data)`). `data` is never NULL; an absent value is empty.
/// Valid as long as the handle it came from (see each accessor).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ping32dlp_str {
    /// First byte.
    pub data: *const c_char,
    /// Length in bytes.
    pub len: usize,
}

static EMPTY: &[u8; 1] = b"\0";

impl ping32dlp_str {
    pub(crate) fn new(s: &str) -> ping32dlp_str {
        if s.is_empty() {
            return ping32dlp_str::empty();
        }
        ping32dlp_str {
            data: s.as_ptr().cast(),
            len: s.len(),
        }
    }

    pub(crate) fn opt(s: Option<&str>) -> ping32dlp_str {
        s.map_or_else(ping32dlp_str::empty, ping32dlp_str::new)
    }

    pub(crate) fn empty() -> ping32dlp_str {
        ping32dlp_str {
            data: EMPTY.as_ptr().cast(),
            len: 0,
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// An error with its code and the words for [`ping32dlp_last_error`].
pub(crate) struct Fail(pub ping32dlp_result, pub String);

impl Fail {
    pub(crate) fn null(what: &str) -> Fail {
        Fail(PING32DLP_ERR_NULL, format!("{what} is NULL"))
    }
    pub(crate) fn invalid(msg: impl Into<String>) -> Fail {
        Fail(PING32DLP_ERR_INVALID_ARGUMENT, msg.into())
    }
}

impl From<dlp::workflow::WorkflowError> for Fail {
    fn from(e: dlp::workflow::WorkflowError) -> Fail {
        use dlp::workflow::WorkflowError as W;
        let code = match &e {
            W::Db(_) => PING32DLP_ERR_DATABASE,
            W::Io(_) => PING32DLP_ERR_IO,
            W::NotFound(_) => PING32DLP_ERR_NOT_FOUND,
            W::AlreadyDecided(_) => PING32DLP_ERR_ALREADY_DECIDED,
            W::Forbidden(_) => PING32DLP_ERR_FORBIDDEN,
            W::Tampered(_) => PING32DLP_ERR_TAMPERED,
            W::Policy(_) => PING32DLP_ERR_POLICY,
        };
        Fail(code, e.to_string())
    }
}

/// Runs the body of an exported function: a panic becomes `PING32DLP_ERR_PANIC`, an error sets
/// the thread's last error. Every fallible exported function goes through here.
pub(crate) fn guard(f: impl FnOnce() -> Result<(), Fail>) -> ping32dlp_result {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => PING32DLP_OK,
        Ok(Err(Fail(code, msg))) => {
            set_last_error(&msg);
            code
        }
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            set_last_error(&format!("internal error (panic): {what}"));
            PING32DLP_ERR_PANIC
        }
    }
}

/// For accessors: a panic gives `default`.
pub(crate) fn guard_value<T>(default: T, f: impl FnOnce() -> Option<T>) -> T {
    catch_unwind(AssertUnwindSafe(f))
        .ok()
        .flatten()
        .unwrap_or(default)
}

/// A shared reference from a handle pointer, or `PING32DLP_ERR_NULL`.
pub(crate) fn arg<'a, T>(p: *const T, what: &str) -> Result<&'a T, Fail> {
    // SAFETY: the caller passes NULL or a pointer this library handed out (the ABI contract);
    // NULL is checked here.
    unsafe { p.as_ref() }.ok_or_else(|| Fail::null(what))
}

/// An optional handle pointer: NULL is `None`.
pub(crate) fn opt_arg<'a, T>(p: *const T) -> Option<&'a T> {
    // SAFETY: as in `arg`.
    unsafe { p.as_ref() }
}

/// A NUL-terminated string argument, lossily UTF-8, or `PING32DLP_ERR_NULL`.
pub(crate) fn str_arg(p: *const c_char, what: &str) -> Result<String, Fail> {
    opt_str_arg(p).ok_or_else(|| Fail::null(what))
}

/// An optional NUL-terminated string: NULL is `None`.
pub(crate) fn opt_str_arg(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: not NULL; the caller promises a NUL-terminated string (the ABI contract).
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// A path argument: the bytes as given (paths need not be UTF-8 on Unix).
pub(crate) fn path_arg(p: *const c_char, what: &str) -> Result<std::path::PathBuf, Fail> {
    if p.is_null() {
        return Err(Fail::null(what));
    }
    // SAFETY: not NULL; a NUL-terminated string by the ABI contract.
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(std::ffi::OsStr::from_bytes(bytes).into())
    }
    #[cfg(not(unix))]
    {
        Ok(String::from_utf8_lossy(bytes).into_owned().into())
    }
}

/// A `(pointer, size)` buffer argument; NULL with size 0 is empty.
pub(crate) fn buf_arg<'a>(p: *const u8, len: usize, what: &str) -> Result<&'a [u8], Fail> {
    if p.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(Fail::null(what))
        };
    }
    if len > isize::MAX as usize {
        return Err(Fail::invalid(format!("{what}: size {len} is too large")));
    }
    // SAFETY: not NULL, and the caller promises `len` readable bytes (the ABI contract).
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Writes an output pointer, which must not be NULL.
pub(crate) fn out<T>(p: *mut T, what: &str, v: T) -> Result<(), Fail> {
    if p.is_null() {
        return Err(Fail::null(what));
    }
    // SAFETY: not NULL; the caller promises it points to writable memory for a T.
    unsafe { p.write(v) };
    Ok(())
}

/// Checks an output pointer before the work that fills it (so nothing is done for nothing).
pub(crate) fn out_ok<T>(p: *mut T, what: &str) -> Result<(), Fail> {
    if p.is_null() {
        Err(Fail::null(what))
    } else {
        Ok(())
    }
}

/// Boxes a handle for C and writes it to an output pointer; with a NULL output nothing is
/// boxed (so nothing leaks).
pub(crate) fn out_handle<T>(p: *mut *mut T, what: &str, v: T) -> Result<(), Fail> {
    out_ok(p, what)?;
    out(p, what, Box::into_raw(Box::new(v)))
}

/// Frees a handle made by `out_handle`; NULL is a no-op.
pub(crate) fn free_handle<T>(p: *mut T) {
    if p.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: not NULL, made by `out_handle` and not freed before (the ABI contract).
        drop(unsafe { Box::from_raw(p) });
    }));
}

/// A JSON document for C, owned by the caller.
pub(crate) fn json_out(v: &serde_json::Value, p: *mut *mut c_char) -> Result<(), Fail> {
    out_ok(p, "json_out")?;
    // serde_json escapes U+0000, so the text has no interior NUL.
    let c = CString::new(v.to_string()).map_err(|e| Fail::invalid(e.to_string()))?;
    out(p, "out", c.into_raw())
}

/// The library's version, `"0.1.0"`: a static string.
/// Ownership: a static string; never freed.
#[no_mangle]
pub extern "C" fn ping32dlp_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The name of a result code (`"PING32DLP_ERR_NULL: a required argument is NULL"`): a static
/// string; unknown codes give `"unknown result code"`.
/// Ownership: a static string; never freed.
#[no_mangle]
pub extern "C" fn ping32dlp_result_str(code: u32) -> *const c_char {
    let s: &'static str = match code {
        0 => "PING32DLP_OK: success\0",
        100 => "PING32DLP_ERR_NULL: a required argument is NULL\0",
        101 => "PING32DLP_ERR_INVALID_ARGUMENT: an argument is not acceptable\0",
        102 => "PING32DLP_ERR_BUSY: the scanner is in use by another thread\0",
        200 => "PING32DLP_ERR_RULES: the rules are wrong\0",
        201 => "PING32DLP_ERR_POLICY: the policy is wrong\0",
        300 => "PING32DLP_ERR_IO: a state file could not be read or written\0",
        301 => "PING32DLP_ERR_DATABASE: the audit database failed\0",
        302 => "PING32DLP_ERR_NOT_FOUND: no such approval or record\0",
        303 => "PING32DLP_ERR_ALREADY_DECIDED: the approval is no longer pending\0",
        304 => "PING32DLP_ERR_FORBIDDEN: not allowed\0",
        305 => "PING32DLP_ERR_TAMPERED: stored evidence does not match its SHA-256\0",
        900 => "PING32DLP_ERR_PANIC: internal error caught at the boundary\0",
        _ => "unknown result code\0",
    };
    s.as_ptr().cast()
}

/// The calling thread's last error in words (the file, line and field for rules and policies,
/// the path or database message for the workflow): NUL-terminated, valid until the thread's
/// next failing call. Empty when nothing failed yet.
/// Ownership: the thread's own buffer, valid until its next failing call; never freed.
#[no_mangle]
pub extern "C" fn ping32dlp_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Frees a `char *` the library returned (a JSON document). NULL is a no-op.
/// Ownership: takes back what the library handed out; it must not be used afterwards.
#[no_mangle]
pub extern "C" fn ping32dlp_string_free(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    // SAFETY: made by `CString::into_raw` in this library and not freed before (the contract).
    drop(unsafe { CString::from_raw(s) });
}

#[cfg(test)]
pub(crate) mod test_hook {
    use std::cell::Cell;

    thread_local! {
        static PANIC_NEXT: Cell<bool> = const { Cell::new(false) };
    }

    /// Makes the next scan on this thread panic inside the library.
    pub fn arm() {
        PANIC_NEXT.with(|p| p.set(true));
    }

    pub fn fire() {
        if PANIC_NEXT.with(|p| p.replace(false)) {
            panic!("test hook: injected panic");
        }
    }
}

#[cfg(test)]
mod tests;
