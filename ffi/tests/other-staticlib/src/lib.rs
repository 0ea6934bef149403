//! A minimal Rust static library with its own allocator use, panic machinery and std.

/// Sums the bytes of a NUL-terminated string through a Rust `String` (uses the allocator).
///
/// # Safety
/// `s` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn other_rust_checksum(s: *const std::ffi::c_char) -> u64 {
    if s.is_null() {
        return 0;
    }
    // SAFETY: the caller passes a NUL-terminated string.
    let text = unsafe { std::ffi::CStr::from_ptr(s) }.to_string_lossy().into_owned();
    std::panic::catch_unwind(|| text.bytes().map(u64::from).sum()).unwrap_or(0)
}
