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
#[no_mangle]
pub extern "C" fn ping32dlp_engine_free(engine: *mut ping32dlp_engine) {
    free_handle(engine);
}

/// A builder with the built-in detectors on.
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
#[no_mangle]
pub extern "C" fn ping32dlp_engine_builder_without_builtins(
    builder: *mut ping32dlp_engine_builder,
) -> ping32dlp_result {
    with_builder(builder, |b| Ok(b.without_builtins()))
}

/// Compiles the engine. Consumes the builder in every case (do not free it afterwards).
/// On `PING32DLP_ERR_RULES`, `*error_out` (if not NULL) receives the error, which the caller
/// releases with `ping32dlp_error_free`.
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

/// Releases a builder that was not built. NULL is a no-op.
#[no_mangle]
pub extern "C" fn ping32dlp_engine_builder_free(builder: *mut ping32dlp_engine_builder) {
    free_handle(builder);
}

/// Number of detectors in the engine (built-in and user).
#[no_mangle]
pub extern "C" fn ping32dlp_engine_detector_count(engine: *const ping32dlp_engine) -> usize {
    guard_value(0, || {
        Some(arg(engine, "engine").ok()?.inner.detectors().len())
    })
}

/// The whole error in one line: `rules.toml:12:5: detector[2].regex: unclosed group`.
/// Valid until the error is freed.
#[no_mangle]
pub extern "C" fn ping32dlp_error_message(error: *const ping32dlp_error) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&arg(error, "error").ok()?.message))
    })
}

/// The file the error is in (empty for rules given as text).
#[no_mangle]
pub extern "C" fn ping32dlp_error_file(error: *const ping32dlp_error) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&arg(error, "error").ok()?.file))
    })
}

/// The 1-based line (0 when the error has no position, such as a missing file).
#[no_mangle]
pub extern "C" fn ping32dlp_error_line(error: *const ping32dlp_error) -> usize {
    guard_value(0, || Some(arg(error, "error").ok()?.e.line))
}

/// The 1-based column (0 when unknown).
#[no_mangle]
pub extern "C" fn ping32dlp_error_column(error: *const ping32dlp_error) -> usize {
    guard_value(0, || Some(arg(error, "error").ok()?.e.column))
}

/// The field (`detector[2].regex`, `rule[3].when.detector`; empty when none).
#[no_mangle]
pub extern "C" fn ping32dlp_error_field(error: *const ping32dlp_error) -> ping32dlp_str {
    guard_value(ping32dlp_str::empty(), || {
        Some(ping32dlp_str::new(&arg(error, "error").ok()?.e.field))
    })
}

/// Releases an error. NULL is a no-op.
#[no_mangle]
pub extern "C" fn ping32dlp_error_free(error: *mut ping32dlp_error) {
    free_handle(error);
}
