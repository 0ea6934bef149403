//! Engines (compiled rules) and their builder; structured rule errors.

use std::ffi::c_char;
use std::sync::Arc;

use dlp::{Engine, EngineBuilder, RuleError};

use crate::ping32dlp_result::*;
use crate::{
    arg, buf_arg, free_handle, guard, guard_value, out_handle, out_ok, path_arg, ping32dlp_result,
    ping32dlp_str, Fail,
};

/// The compiled detectors: immutable, shared by any number of threads and scanners.
///
/// Made by `ping32dlp_engine_new_builtin` or `ping32dlp_engine_builder_build`; released by
/// `ping32dlp_engine_free` (scanners made from it keep their own reference, so it may be freed
/// while they live).
pub struct ping32dlp_engine {
    pub(crate) inner: Arc<Engine>,
}

/// Collects rules files, rules text and dictionaries for an engine.
///
/// Made by `ping32dlp_engine_builder_new`; consumed by `ping32dlp_engine_builder_build` (or
/// released unused by `ping32dlp_engine_builder_free`). Errors in what is added are reported
/// by the build, with file, line and field. One thread at a time.
pub struct ping32dlp_engine_builder {
    inner: Option<EngineBuilder>,
    error: Option<RuleError>,
}

/// What is wrong with a rules file or policy: where and why.
///
/// Made by `ping32dlp_engine_builder_build`, `ping32dlp_policy_load`, `ping32dlp_policy_parse`
/// and `ping32dlp_policy_check` on failure; released by `ping32dlp_error_free`.
pub struct ping32dlp_error {
    pub(crate) e: RuleError,
    file: String,
    message: String,
}

impl ping32dlp_error {
    pub(crate) fn new(e: RuleError) -> ping32dlp_error {
        let file = e
            .file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        ping32dlp_error {
            message: e.to_string(),
            e,
            file,
        }
    }
}

/// Builds the engine of the built-in detectors with their default settings.
/// Ownership: `*engine_out` is the caller's (`ping32dlp_engine_free`), written only on success. Arguments are copied; nothing of them is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_engine_new_builtin(
    engine_out: *mut *mut ping32dlp_engine,
) -> ping32dlp_result {
    guard(|| {
        out_ok(engine_out, "engine_out")?;
        out_handle(
            engine_out,
            "engine_out",
            ping32dlp_engine {
                inner: Arc::new(Engine::builtin()),
            },
        )
    })
}

/// Releases an engine. NULL is a no-op.
/// Ownership: takes the handle back; it must not be used afterwards.
#[no_mangle]
pub extern "C" fn ping32dlp_engine_free(engine: *mut ping32dlp_engine) {
    free_handle(engine);
}

/// A builder with the built-in detectors on.
/// Ownership: `*builder_out` is the caller's (`ping32dlp_engine_builder_free`), written only on success. Arguments are copied; nothing of them is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_engine_builder_new(
    builder_out: *mut *mut ping32dlp_engine_builder,
) -> ping32dlp_result {
    guard(|| {
        out_handle(
            builder_out,
            "builder_out",
            ping32dlp_engine_builder {
                inner: Some(Engine::builder()),
                error: None,
            },
        )
    })
}

fn with_builder(
    b: *mut ping32dlp_engine_builder,
    f: impl FnOnce(EngineBuilder) -> Result<EngineBuilder, RuleError>,
) -> ping32dlp_result {
    guard(|| {
        if b.is_null() {
            return Err(Fail::null("builder"));
        }
        // SAFETY: not NULL; a live builder used by one thread (the ABI contract).
        let b = unsafe { &mut *b };
        if b.error.is_some() {
            return Ok(()); // the first error is the one the build reports
        }
        match b.inner.take() {
            Some(inner) => match f(inner) {
                Ok(inner) => b.inner = Some(inner),
                Err(e) => b.error = Some(e),
            },
            None => return Err(Fail::invalid("the builder was already built")),
        }
        Ok(())
    })
}

/// Adds a TOML rules file (user detectors, keyword lists, dictionaries, retuned built-ins).
/// A file that cannot be read or parsed makes the build fail with its error.
/// Ownership: changes the builder; the path is copied (the file is read by the build).
#[no_mangle]
pub extern "C" fn ping32dlp_engine_builder_add_rules_file(
    builder: *mut ping32dlp_engine_builder,
    path: *const c_char,
) -> ping32dlp_result {
    let path = match path_arg(path, "path") {
        Ok(p) => p,
        Err(Fail(code, msg)) => {
            crate::set_last_error(&msg);
            return code;
        }
    };
    with_builder(builder, |b| b.rules_file(path))
}

/// Adds rules given as TOML text (`len` bytes of UTF-8).
/// Ownership: changes the builder; the text is copied.
#[no_mangle]
pub extern "C" fn ping32dlp_engine_builder_add_rules(
    builder: *mut ping32dlp_engine_builder,
    toml: *const u8,
    len: usize,
) -> ping32dlp_result {
    let text = match buf_arg(toml, len, "toml") {
        Ok(t) => t,
        Err(Fail(code, msg)) => {
            crate::set_last_error(&msg);
            return code;
        }
    };
    let text = match std::str::from_utf8(text) {
        Ok(t) => Ok(t.to_string()),
        Err(e) => Err(RuleError {
            document: "rules",
            file: None,
            line: 0,
            column: 0,
            field: String::new(),
            message: format!("the rules text is not UTF-8 ({e})"),
        }),
    };
    with_builder(builder, |b| text.map(|t| b.rules_str(&t)))
}

/// Adds a dictionary file (one term a line) as its own detector, named after the file.
/// Ownership: changes the builder; the path is copied (the file is read by the build).
#[no_mangle]
pub extern "C" fn ping32dlp_engine_builder_add_dictionary_file(
    builder: *mut ping32dlp_engine_builder,
    path: *const c_char,
) -> ping32dlp_result {
    let path = match path_arg(path, "path") {
        Ok(p) => p,
        Err(Fail(code, msg)) => {
            crate::set_last_error(&msg);
            return code;
        }
    };
    with_builder(builder, |b| Ok(b.dictionary_file(path)))
}

/// Turns the built-in detectors off (only the added rules remain).
/// Ownership: changes the builder.
#[no_mangle]
pub extern "C" fn ping32dlp_engine_builder_without_builtins(
    builder: *mut ping32dlp_engine_builder,
) -> ping32dlp_result {
    with_builder(builder, |b| Ok(b.without_builtins()))
}

/// Compiles the engine. Consumes the builder in every case (do not free it afterwards).
/// On `PING32DLP_ERR_RULES`, `*error_out` (if not NULL) receives the error, which the caller
/// releases with `ping32dlp_error_free`.
/// Ownership: consumes the builder in every case; `*engine_out` is the caller's (`ping32dlp_engine_free`), written only on success; `*error_out` is the caller's (`ping32dlp_error_free`), written only on `PING32DLP_ERR_RULES`.
#[no_mangle]
pub extern "C" fn ping32dlp_engine_builder_build(
    builder: *mut ping32dlp_engine_builder,
    engine_out: *mut *mut ping32dlp_engine,
    error_out: *mut *mut ping32dlp_error,
) -> ping32dlp_result {
    guard(|| {
        if builder.is_null() {
            return Err(Fail::null("builder"));
        }
        // SAFETY: not NULL; made by `ping32dlp_engine_builder_new` and consumed here once.
        let b = unsafe { Box::from_raw(builder) };
        out_ok(engine_out, "engine_out")?;
        let result = match (b.error, b.inner) {
            (Some(e), _) => Err(e),
            (None, Some(inner)) => inner.build(),
            (None, None) => return Err(Fail::invalid("the builder was already built")),
        };
        match result {
            Ok(engine) => out_handle(
                engine_out,
                "engine_out",
                ping32dlp_engine {
                    inner: Arc::new(engine),
                },
            ),
            Err(e) => {
                let msg = e.to_string();
                if !error_out.is_null() {
                    out_handle(error_out, "error_out", ping32dlp_error::new(e))?;
                }
                Err(Fail(PING32DLP_ERR_RULES, msg))
            }
        }
    })
}

/// Saves the compiled engine as bytes (versioned, checksummed), to be loaded by
/// `ping32dlp_engine_deserialize` of the same library version without compiling its rules and
/// dictionaries again (as Hyperscan's `hs_serialize_database`). The bytes depend on nothing.
/// Ownership: reads the engine; `*bytes_out` (`*len_out` bytes) is the caller's
/// (`ping32dlp_bytes_free`), both written only on success.
#[no_mangle]
pub extern "C" fn ping32dlp_engine_serialize(
    engine: *const ping32dlp_engine,
    bytes_out: *mut *mut u8,
    len_out: *mut usize,
) -> ping32dlp_result {
    guard(|| {
        let e = arg(engine, "engine")?;
        out_ok(bytes_out, "bytes_out")?;
        out_ok(len_out, "len_out")?;
        let bytes = e.inner.to_bytes().into_boxed_slice();
        let len = bytes.len();
        crate::out(len_out, "len_out", len)?;
        crate::out(bytes_out, "bytes_out", Box::into_raw(bytes).cast::<u8>())
    })
}

/// Loads an engine saved by `ping32dlp_engine_serialize`. Refuses bytes of another library
/// version, damaged bytes (checksum) and inconsistent ones with `PING32DLP_ERR_ENGINE_IMAGE`
/// and the reason in `ping32dlp_last_error`.
/// Ownership: `*engine_out` is the caller's (`ping32dlp_engine_free`), written only on success.
/// The bytes are read during the call; nothing of them is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_engine_deserialize(
    bytes: *const u8,
    len: usize,
    engine_out: *mut *mut ping32dlp_engine,
) -> ping32dlp_result {
    guard(|| {
        let data = buf_arg(bytes, len, "bytes")?;
        out_ok(engine_out, "engine_out")?;
        let engine = Engine::from_bytes(data)
            .map_err(|e| Fail(PING32DLP_ERR_ENGINE_IMAGE, e.to_string()))?;
        out_handle(
            engine_out,
            "engine_out",
            ping32dlp_engine {
                inner: Arc::new(engine),
            },
        )
    })
}

/// Releases a builder that was not built. NULL is a no-op.
/// Ownership: takes the handle back; it must not be used afterwards.
#[no_mangle]
pub extern "C" fn ping32dlp_engine_builder_free(builder: *mut ping32dlp_engine_builder) {
    free_handle(builder);
}

/// Number of detectors in the engine (built-in and user).
/// Ownership: reads the engine; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_engine_detector_count(engine: *const ping32dlp_engine) -> usize {
    guard_value(0, || {
        Some(arg(engine, "engine").ok()?.inner.detectors().len())
    })
}

/// The id of detector `index` (engine order: built-in, then user detectors and dictionaries):
/// `jp_my_number`, what a policy's `detector = [...]` names. Empty for an index out of range.
/// Ownership: borrowed from the engine; valid as long as the engine.
#[no_mangle]
pub extern "C" fn ping32dlp_engine_detector_id(
    engine: *const ping32dlp_engine,
    index: usize,
) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        let e = crate::opt_arg(engine)?;
        Some(ping32dlp_str::new(&e.inner.detectors().get(index)?.id))
    })
}

/// The display name of detector `index` in `lang` (`"ja"` for Japanese, anything else or
/// NULL for English): `マイナンバー（個人番号）`, `My Number (Individual Number)`.
/// Ownership: borrowed from the engine; valid as long as the engine.
#[no_mangle]
pub extern "C" fn ping32dlp_engine_detector_name(
    engine: *const ping32dlp_engine,
    index: usize,
    lang: *const c_char,
) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        let e = crate::opt_arg(engine)?;
        let d = e.inner.detectors().get(index)?;
        let ja = crate::opt_str_arg(lang).is_some_and(|l| l.starts_with("ja"));
        Some(ping32dlp_str::new(if ja { &d.name_ja } else { &d.name_en }))
    })
}

/// The whole error in one line: `rules.toml:12:5: detector[2].regex: unclosed group`.
/// Valid until the error is freed.
/// Ownership: borrowed from the error.
#[no_mangle]
pub extern "C" fn ping32dlp_error_message(error: *const ping32dlp_error) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&arg(error, "error").ok()?.message))
    })
}

/// The file the error is in (empty for rules given as text).
/// Ownership: borrowed from the error.
#[no_mangle]
pub extern "C" fn ping32dlp_error_file(error: *const ping32dlp_error) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&arg(error, "error").ok()?.file))
    })
}

/// The 1-based line (0 when the error has no position, such as a missing file).
/// Ownership: reads the error; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_error_line(error: *const ping32dlp_error) -> usize {
    guard_value(0, || Some(arg(error, "error").ok()?.e.line))
}

/// The 1-based column (0 when unknown).
/// Ownership: reads the error; nothing is kept.
#[no_mangle]
pub extern "C" fn ping32dlp_error_column(error: *const ping32dlp_error) -> usize {
    guard_value(0, || Some(arg(error, "error").ok()?.e.column))
}

/// The field (`detector[2].regex`, `rule[3].when.detector`; empty when none).
/// Ownership: borrowed from the error.
#[no_mangle]
pub extern "C" fn ping32dlp_error_field(error: *const ping32dlp_error) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&arg(error, "error").ok()?.e.field))
    })
}

/// Releases an error. NULL is a no-op.
/// Ownership: takes the handle back; it must not be used afterwards.
#[no_mangle]
pub extern "C" fn ping32dlp_error_free(error: *mut ping32dlp_error) {
    free_handle(error);
}
