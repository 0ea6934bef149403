"""Python binding of libping32dlp, the data-loss-prevention engine for outbound email.

It loads the C library (``libping32dlp.so``) with ctypes: from ``$PING32DLP_LIBRARY`` if set
(the library file, or the folder it is in), else wherever the dynamic loader finds it
(``make install`` puts it in ``/usr/local/lib``).

>>> import ping32dlp
>>> with ping32dlp.Engine() as engine, engine.scanner() as scanner:
...     report = scanner.scan_text("個人番号 1234 5678 9018")
...     [(f.detector, f.value_masked) for f in report.findings]
[('jp_my_number', '**** **** 9018')]

Reports, findings and verdicts are plain dataclasses, copied out of the library: they stay
valid after the next scan, and a report can be judged (:meth:`Policy.evaluate`) or recorded at
any time. Raw values are copied only when asked (``scan_*(raw_values=True)``). The built-in
policy is monitor-only: its verdicts say ``action='allow'`` and ``would_action`` says what
enforcing it would do.
Errors are exceptions carrying the C result code (:class:`Error` and its subclasses).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

__all__ = [
    "Action", "Attachment", "Context", "Decision", "Engine", "Error", "Finding", "Policy",
    "Report", "RuleMatch", "Scanner", "Unscannable", "Verdict", "Workflow", "library_version",
    "RulesError", "PolicyError", "NotFoundError", "AlreadyDecidedError", "ForbiddenError",
    "BusyError", "StateError", "FileError", "EngineImageError", "Evidence", "DetectorCount", "Detector",
]

# ---------------------------------------------------------------------------------------------
# Loading the library and declaring the functions we call.


def _load() -> ctypes.CDLL:
    path = os.environ.get("PING32DLP_LIBRARY") or ctypes.util.find_library("ping32dlp")
    if path and os.path.isdir(path):  # the folder of the library
        for name in ("libping32dlp.so", "libping32dlp.so.0", "libping32dlp.dylib", "ping32dlp.dll"):
            if os.path.exists(os.path.join(path, name)):
                path = os.path.join(path, name)
                break
    candidates = [path] if path else []
    candidates += ["libping32dlp.so.0", "/usr/local/lib/libping32dlp.so.0"]
    errors = []
    for c in candidates:
        try:
            return ctypes.CDLL(c)
        except OSError as e:  # try the next place
            errors.append(f"{c}: {e}")
    raise ImportError(
        "libping32dlp not found (run `make install`, or set PING32DLP_LIBRARY): " + "; ".join(errors)
    )


_lib = _load()


class _Str(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("len", ctypes.c_size_t)]

    def text(self) -> str:
        if not self.data or not self.len:
            return ""
        return ctypes.string_at(self.data, self.len).decode("utf-8", "replace")


_p = ctypes.c_void_p
_pp = ctypes.POINTER(ctypes.c_void_p)
_u32, _i64, _u64, _size = ctypes.c_uint32, ctypes.c_int64, ctypes.c_uint64, ctypes.c_size_t
_cstr = ctypes.c_char_p
_ALERT_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


def _fn(name: str, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_version = _fn("ping32dlp_version", _cstr)
_result_str = _fn("ping32dlp_result_str", _cstr, _u32)
_last_error = _fn("ping32dlp_last_error", _cstr)
_string_free = _fn("ping32dlp_string_free", None, _p)
_bytes_free = _fn("ping32dlp_bytes_free", None, _p, _size)

_engine_new_builtin = _fn("ping32dlp_engine_new_builtin", _u32, _pp)
_engine_free = _fn("ping32dlp_engine_free", None, _p)
_engine_detector_count = _fn("ping32dlp_engine_detector_count", _size, _p)
_engine_detector_id = _fn("ping32dlp_engine_detector_id", _Str, _p, _size)
_engine_detector_name = _fn("ping32dlp_engine_detector_name", _Str, _p, _size, _cstr)
_builder_new = _fn("ping32dlp_engine_builder_new", _u32, _pp)
_builder_add_rules_file = _fn("ping32dlp_engine_builder_add_rules_file", _u32, _p, _cstr)
_builder_add_rules = _fn("ping32dlp_engine_builder_add_rules", _u32, _p, _cstr, _size)
_builder_add_dictionary_file = _fn("ping32dlp_engine_builder_add_dictionary_file", _u32, _p, _cstr)
_builder_without_builtins = _fn("ping32dlp_engine_builder_without_builtins", _u32, _p)
_builder_build = _fn("ping32dlp_engine_builder_build", _u32, _p, _pp, _pp)
_engine_serialize = _fn("ping32dlp_engine_serialize", _u32, _p, _pp, ctypes.POINTER(_size))
_engine_deserialize = _fn("ping32dlp_engine_deserialize", _u32, ctypes.c_char_p, _size, _pp)
_error_message = _fn("ping32dlp_error_message", _Str, _p)
_error_file = _fn("ping32dlp_error_file", _Str, _p)
_error_line = _fn("ping32dlp_error_line", _size, _p)
_error_column = _fn("ping32dlp_error_column", _size, _p)
_error_field = _fn("ping32dlp_error_field", _Str, _p)
_error_free = _fn("ping32dlp_error_free", None, _p)

_context_new = _fn("ping32dlp_context_new", _u32, _pp)
_context_set = _fn("ping32dlp_context_set", _u32, _p, _u32, _cstr)
_context_add_origin = _fn("ping32dlp_context_add_origin", _u32, _p, _cstr, _cstr)
_context_set_time = _fn("ping32dlp_context_set_time", _u32, _p, _i64)
_context_free = _fn("ping32dlp_context_free", None, _p)

_scanner_new = _fn("ping32dlp_scanner_new", _u32, _p, _pp)
_scanner_free = _fn("ping32dlp_scanner_free", None, _p)
_scanner_add_password = _fn("ping32dlp_scanner_add_password", _u32, _p, _cstr)
_scanner_set_limit = _fn("ping32dlp_scanner_set_limit", _u32, _p, _u32, _u64)
_scanner_set_min_confidence = _fn("ping32dlp_scanner_set_min_confidence", _u32, _p, _u32)
_scanner_set_encoding = _fn("ping32dlp_scanner_set_encoding", _u32, _p, _cstr)
_report_clone = _fn("ping32dlp_report_clone", _u32, _p, _pp)
_report_free = _fn("ping32dlp_report_free", None, _p)
_report_detector_count = _fn("ping32dlp_report_detector_count", _size, _p)
_report_detector_id = _fn("ping32dlp_report_detector_id", _Str, _p, _size)
_report_detector_findings = _fn("ping32dlp_report_detector_findings", _size, _p, _size)
_report_detector_unique = _fn("ping32dlp_report_detector_unique", _size, _p, _size)
_scan_message = _fn("ping32dlp_scanner_scan_message", _u32, _p, _cstr, _size, _p, _u32, _pp)
_stream_new = _fn("ping32dlp_message_stream_new", _u32, _u64, _pp)
_stream_write = _fn("ping32dlp_message_stream_write", _u32, _p, _cstr, _size)
_stream_free = _fn("ping32dlp_message_stream_free", None, _p)
_scan_message_stream = _fn("ping32dlp_scanner_scan_message_stream", _u32, _p, _p, _p, _u32, _pp)
_scan_file = _fn("ping32dlp_scanner_scan_file", _u32, _p, _cstr, _cstr, _size, _p, _u32, _pp)
_scan_text = _fn("ping32dlp_scanner_scan_text", _u32, _p, _cstr, _size, _p, _u32, _pp)

_report_is_message = _fn("ping32dlp_report_is_message", ctypes.c_bool, _p)
_report_size = _fn("ping32dlp_report_size", _u64, _p)
_report_header_count = _fn("ping32dlp_report_header_count", _size, _p, _u32)
_report_header = _fn("ping32dlp_report_header", _Str, _p, _u32, _size)
_report_attachment_count = _fn("ping32dlp_report_attachment_count", _size, _p)
_report_attachment = _fn("ping32dlp_report_attachment", _p, _p, _size)
_att_name = _fn("ping32dlp_attachment_name", _Str, _p)
_att_location = _fn("ping32dlp_attachment_location", _Str, _p)
_att_declared_type = _fn("ping32dlp_attachment_declared_type", _Str, _p)
_att_true_type = _fn("ping32dlp_attachment_true_type", _Str, _p)
_att_sha256 = _fn("ping32dlp_attachment_sha256", _Str, _p)
_att_origin = _fn("ping32dlp_attachment_origin", _Str, _p)
_att_property = _fn("ping32dlp_attachment_property", _Str, _p, _cstr)
_att_size = _fn("ping32dlp_attachment_size", _u64, _p)
_att_depth = _fn("ping32dlp_attachment_depth", _u32, _p)
_att_mismatch = _fn("ping32dlp_attachment_extension_mismatch", ctypes.c_bool, _p)
_report_finding_count = _fn("ping32dlp_report_finding_count", _size, _p)
_report_finding = _fn("ping32dlp_report_finding", _p, _p, _size)
_f_detector = _fn("ping32dlp_finding_detector", _Str, _p)
_f_confidence = _fn("ping32dlp_finding_confidence", _u32, _p)
_f_location = _fn("ping32dlp_finding_location", _Str, _p)
_f_masked = _fn("ping32dlp_finding_value_masked", _Str, _p)
_f_value = _fn("ping32dlp_finding_value", _Str, _p)
_f_start = _fn("ping32dlp_finding_start", _size, _p)
_f_end = _fn("ping32dlp_finding_end", _size, _p)
_f_page = _fn("ping32dlp_finding_page", _u32, _p)
_f_sheet = _fn("ping32dlp_finding_sheet", _Str, _p)
_f_cell = _fn("ping32dlp_finding_cell", _Str, _p)
_f_evidence_count = _fn("ping32dlp_finding_evidence_count", _size, _p)
_f_evidence_kind = _fn("ping32dlp_finding_evidence_kind", _Str, _p, _size)
_f_evidence_detail = _fn("ping32dlp_finding_evidence_detail", _Str, _p, _size)
_f_evidence_distance = _fn("ping32dlp_finding_evidence_distance", _i64, _p, _size)
_report_unscannable_count = _fn("ping32dlp_report_unscannable_count", _size, _p)
_report_unscannable = _fn("ping32dlp_report_unscannable", _p, _p, _size)
_u_location = _fn("ping32dlp_unscannable_location", _Str, _p)
_u_reason = _fn("ping32dlp_unscannable_reason", _Str, _p)
_u_detail = _fn("ping32dlp_unscannable_detail", _Str, _p)
_report_to_json = _fn("ping32dlp_report_to_json", _u32, _p, _u32, _pp)

_policy_load = _fn("ping32dlp_policy_load", _u32, _cstr, _pp, _pp)
_policy_parse = _fn("ping32dlp_policy_parse", _u32, _cstr, _size, _pp, _pp)
_policy_load_for_engine = _fn("ping32dlp_policy_load_for_engine", _u32, _cstr, _p, _pp, _pp)
_policy_parse_for_engine = _fn("ping32dlp_policy_parse_for_engine", _u32, _cstr, _size, _p, _pp, _pp)
_policy_new_default = _fn("ping32dlp_policy_new_default", _u32, _pp)
_policy_check = _fn("ping32dlp_policy_check", _u32, _p, _p, _pp)
_policy_free = _fn("ping32dlp_policy_free", None, _p)
_policy_evaluate = _fn("ping32dlp_policy_evaluate", _u32, _p, _p, _p, _pp)
_verdict_free = _fn("ping32dlp_verdict_free", None, _p)
_verdict_action = _fn("ping32dlp_verdict_action", _u32, _p)
_verdict_would_action = _fn("ping32dlp_verdict_would_action", _u32, _p)
_verdict_risk = _fn("ping32dlp_verdict_risk", _u32, _p)
_verdict_message = _fn("ping32dlp_verdict_message", _Str, _p, _cstr)
_verdict_rule_count = _fn("ping32dlp_verdict_rule_count", _size, _p)
_verdict_rule = _fn("ping32dlp_verdict_rule", _p, _p, _size)
_rm_id = _fn("ping32dlp_rule_match_id", _Str, _p)
_rm_action = _fn("ping32dlp_rule_match_action", _u32, _p)
_rm_is_monitor = _fn("ping32dlp_rule_match_is_monitor", ctypes.c_bool, _p)
_rm_severity = _fn("ping32dlp_rule_match_severity", _Str, _p)
_rm_reason_count = _fn("ping32dlp_rule_match_reason_count", _size, _p)
_rm_reason = _fn("ping32dlp_rule_match_reason", _Str, _p, _size)
_verdict_header_count = _fn("ping32dlp_verdict_header_count", _size, _p)
_verdict_header_name = _fn("ping32dlp_verdict_header_name", _Str, _p, _size)
_verdict_header_value = _fn("ping32dlp_verdict_header_value", _Str, _p, _size)
_verdict_subject_prefix = _fn("ping32dlp_verdict_subject_prefix", _Str, _p)

_workflow_open = _fn("ping32dlp_workflow_open", _u32, _cstr, _p, _pp)
_workflow_open_store = _fn("ping32dlp_workflow_open_store", _u32, _cstr, _cstr, _p, _pp)
_workflow_free = _fn("ping32dlp_workflow_free", None, _p)
_workflow_set_alert_callback = _fn("ping32dlp_workflow_set_alert_callback", _u32, _p, _ALERT_CB, _p)
_workflow_record = _fn("ping32dlp_workflow_record", _u32, _p, _p, _p, _p, _cstr, _size, _u32, _pp)
_decision_verdict = _fn("ping32dlp_decision_verdict", _p, _p)
_decision_record_id = _fn("ping32dlp_decision_record_id", _i64, _p)
_decision_approval_id = _fn("ping32dlp_decision_approval_id", _Str, _p)
_decision_approval_token = _fn("ping32dlp_decision_approval_token", _Str, _p)
_decision_free = _fn("ping32dlp_decision_free", None, _p)
_workflow_record_json = _fn("ping32dlp_workflow_record_json", _u32, _p, _i64, _pp)
_workflow_approvals_json = _fn("ping32dlp_workflow_approvals_json", _u32, _p, _cstr, _cstr, _pp)
_workflow_approval_json = _fn("ping32dlp_workflow_approval_json", _u32, _p, _cstr, _pp)
_workflow_approval_view = _fn("ping32dlp_workflow_approval_view", _u32, _p, _cstr, _cstr, _cstr, _cstr)
_workflow_approval_decide = _fn(
    "ping32dlp_workflow_approval_decide", _u32, _p, _cstr, _cstr, ctypes.c_bool, _cstr, _u32
)
_workflow_approval_verify_token = _fn("ping32dlp_workflow_approval_verify_token", _u32, _p, _cstr, _cstr)
_workflow_held_message = _fn(
    "ping32dlp_workflow_held_message", _u32, _p, _cstr, _pp, ctypes.POINTER(_size)
)
_workflow_approval_close = _fn("ping32dlp_workflow_approval_close", _u32, _p, _cstr, _cstr)
_workflow_expire = _fn("ping32dlp_workflow_expire", _u32, _p, _i64, ctypes.POINTER(_size))

# Constants of include/ping32dlp.h.
_CTX = {
    "channel": 1, "user": 2, "host": 3, "client_app": 4, "client_addr": 5, "tls": 6,
    "envelope_from": 7, "envelope_to": 8, "group": 9, "queue_id": 10,
}
_HEADERS = {"subject": 1, "from": 2, "to": 3, "cc": 4, "bcc": 5, "reply_to": 6, "date": 7, "message_id": 8}
_JSON_SHOW_VALUES = 1
_DECIDE_ADMIN = 1
_CONFIDENCE = {1: "low", 2: "medium", 3: "high"}
_LIMITS = {
    "container_depth": 1, "mime_depth": 2, "mime_parts": 3, "archive_entries": 4,
    "message_entries": 5, "entry_bytes": 6, "message_decompressed": 7, "compression_ratio": 8,
    "text_per_object": 9, "text_per_message": 10, "pdf_objects": 11, "pdf_pages": 12,
    "cells": 13, "raw_message": 14, "time_ms": 15,
}


def library_version() -> str:
    """The C library's version (``"0.1.0"``)."""
    return _version().decode()


# ---------------------------------------------------------------------------------------------
# Errors.


class Error(Exception):
    """A failed call: ``code`` is the C ``ping32dlp_result``, ``name`` its symbol."""

    def __init__(self, code: int, message: str):
        self.code = code
        self.name = _result_str(code).decode().split(":", 1)[0]
        super().__init__(f"{self.name}: {message}" if message else self.name)


class RulesError(Error):
    """A rules file, rules text or dictionary is wrong: ``file``, ``line``, ``column``, ``field``."""

    def __init__(self, code: int, message: str, file: str = "", line: int = 0, column: int = 0, field: str = ""):
        super().__init__(code, message)
        self.file, self.line, self.column, self.field = file, line, column, field


class PolicyError(RulesError):
    """A policy file is wrong or names unknown detectors."""


class NotFoundError(Error, KeyError):
    """No approval or record with that id."""


class AlreadyDecidedError(Error):
    """The approval is no longer pending."""


class ForbiddenError(Error, PermissionError):
    """Not allowed (not an approver of the request, a forged token)."""


class BusyError(Error):
    """The scanner is in use by another thread."""


class StateError(Error):
    """A report was used after it was closed."""


class FileError(Error, OSError):
    """A file (a policy, the state directory) could not be read or written."""


class EngineImageError(Error, ValueError):
    """Bytes given to :meth:`Engine.from_bytes` are not a saved engine of this library version,
    or are damaged."""


_ERRORS = {
    302: NotFoundError, 303: AlreadyDecidedError, 304: ForbiddenError, 102: BusyError, 300: FileError,
    200: RulesError, 201: PolicyError, 202: EngineImageError,
}


def _check(code: int) -> None:
    if code != 0:
        msg = (_last_error() or b"").decode("utf-8", "replace")
        raise _ERRORS.get(code, Error)(code, msg)


def _rule_error(cls, code: int, err: ctypes.c_void_p) -> RulesError:
    msg = (_last_error() or b"").decode("utf-8", "replace")
    if not err:
        return cls(code, msg)
    try:
        return cls(
            code, _error_message(err).text(), _error_file(err).text(), int(_error_line(err)),
            int(_error_column(err)), _error_field(err).text(),
        )
    finally:
        _error_free(err)


def _b(s: Optional[Union[str, bytes, os.PathLike]]) -> Optional[bytes]:
    if s is None:
        return None
    if isinstance(s, bytes):
        return s
    return os.fsencode(s) if isinstance(s, os.PathLike) else s.encode("utf-8")


def _data(value: Any, what: str) -> bytes:
    """Bytes for a C buffer; a clear TypeError for anything else (a str is not a message)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        raise TypeError(f"{what} takes bytes (the raw data as read or received), not str: pass value.encode() or read the file in binary mode")
    raise TypeError(f"{what} takes bytes, not {type(value).__name__}")


def _take_json(p: ctypes.c_void_p) -> Any:
    try:
        return json.loads(ctypes.string_at(p).decode("utf-8"))
    finally:
        _string_free(p)


class _Handle:
    """An owned C handle with close() and a context manager."""

    _free: Callable = staticmethod(lambda p: None)

    def __init__(self, ptr: ctypes.c_void_p):
        self._ptr = ptr

    def close(self) -> None:
        """Releases the C object now (also done when garbage-collected)."""
        p, self._ptr = getattr(self, "_ptr", None), None
        if p:
            type(self)._free(p)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    @property
    def _as_parameter_(self) -> ctypes.c_void_p:
        # A closed handle is passed as NULL: the library answers PING32DLP_ERR_NULL, which
        # raises Error (an exception here would be wrapped in ctypes.ArgumentError).
        return self._ptr or ctypes.c_void_p()


# ---------------------------------------------------------------------------------------------
# Engine, context, scanner, report.


class Engine(_Handle):
    """Compiled detectors: the built-ins plus optional rules files, rules text and dictionaries.

    Immutable and thread-safe: share one engine; give each thread its own :class:`Scanner`.
    Raises :class:`RulesError` with file, line and field when the rules are wrong.
    """

    _free = staticmethod(_engine_free)

    def __init__(
        self,
        rules: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]], None] = None,
        *,
        rules_text: Optional[str] = None,
        dictionaries: Sequence[Union[str, os.PathLike]] = (),
        builtins: bool = True,
    ):
        out = ctypes.c_void_p()
        if rules is None and rules_text is None and not dictionaries and builtins:
            _check(_engine_new_builtin(ctypes.byref(out)))
            super().__init__(out)
            return
        b = ctypes.c_void_p()
        _check(_builder_new(ctypes.byref(b)))
        files = [rules] if isinstance(rules, (str, os.PathLike)) else list(rules or [])
        for f in files:
            _builder_add_rules_file(b, _b(f))
        if rules_text is not None:
            t = rules_text.encode("utf-8")
            _builder_add_rules(b, t, len(t))
        for d in dictionaries:
            _builder_add_dictionary_file(b, _b(d))
        if not builtins:
            _builder_without_builtins(b)
        err = ctypes.c_void_p()
        code = _builder_build(b, ctypes.byref(out), ctypes.byref(err))  # consumes b
        if code == 200:
            raise _rule_error(RulesError, code, err)
        _check(code)
        super().__init__(out)

    @property
    def detector_count(self) -> int:
        """Number of detectors."""
        return int(_engine_detector_count(self))

    def detectors(self) -> List["Detector"]:
        """The engine's detectors in order: ids (what a policy names) and display names."""
        return [
            Detector(_engine_detector_id(self, i).text(), _engine_detector_name(self, i, b"en").text(),
                     _engine_detector_name(self, i, b"ja").text())
            for i in range(int(_engine_detector_count(self)))
        ]

    def scanner(self) -> "Scanner":
        """A new scanner for this engine (one thread's)."""
        return Scanner(self)

    def to_bytes(self) -> bytes:
        """The compiled engine as bytes (versioned, checksummed) for :meth:`from_bytes`: build
        a large dictionary once, load it at every start without compiling it again."""
        data, n = ctypes.c_void_p(), _size()
        _check(_engine_serialize(self, ctypes.byref(data), ctypes.byref(n)))
        try:
            return ctypes.string_at(data, n.value)
        finally:
            _bytes_free(data, n.value)

    @classmethod
    def from_bytes(cls, data: bytes) -> "Engine":
        """An engine saved by :meth:`to_bytes` of the same library version. Raises
        :class:`EngineImageError` for another version or damaged bytes."""
        data = _data(data, "data")
        out = ctypes.c_void_p()
        _check(_engine_deserialize(data, len(data), ctypes.byref(out)))
        engine = cls.__new__(cls)
        _Handle.__init__(engine, out)
        return engine


@dataclass
class Context:
    """Who sent what, how and to whom. ``origins`` maps attachment names to where they came from."""

    channel: str = "api"
    user: Optional[str] = None
    host: Optional[str] = None
    client_app: Optional[str] = None
    client_addr: Optional[str] = None
    tls: Optional[str] = None
    envelope_from: Optional[str] = None
    envelope_to: List[str] = field(default_factory=list)
    groups: List[str] = field(default_factory=list)
    queue_id: Optional[str] = None
    time: Optional[int] = None
    origins: Dict[str, str] = field(default_factory=dict)

    def _make(self) -> "_CContext":
        c = _CContext()
        for key in ("channel", "user", "host", "client_app", "client_addr", "tls", "envelope_from", "queue_id"):
            v = getattr(self, key)
            if v is not None:
                _check(_context_set(c, _CTX[key], _b(v)))
        for r in self.envelope_to:
            _check(_context_set(c, _CTX["envelope_to"], _b(r)))
        for g in self.groups:
            _check(_context_set(c, _CTX["group"], _b(g)))
        for name, origin in self.origins.items():
            _check(_context_add_origin(c, _b(name), _b(origin)))
        if self.time is not None:
            _check(_context_set_time(c, int(self.time)))
        return c


class _CContext(_Handle):
    _free = staticmethod(_context_free)

    def __init__(self):
        out = ctypes.c_void_p()
        _check(_context_new(ctypes.byref(out)))
        super().__init__(out)


@dataclass(frozen=True)
class Detector:
    """A detector of an engine: ``id`` (``jp_my_number``) and its English and Japanese names."""

    id: str
    name_en: str
    name_ja: str


@dataclass(frozen=True)
class Evidence:
    """Why a finding is one: ``kind`` (``context``, ``checksum``, ...), the word or check, and
    the distance in characters from a context word."""

    kind: str
    detail: str
    distance: Optional[int] = None


@dataclass(frozen=True)
class DetectorCount:
    """A detector's totals over a report: findings and distinct values."""

    findings: int
    unique: int


@dataclass(frozen=True)
class Finding:
    """A finding: detector id, confidence (``low``/``medium``/``high``), where, masked value."""

    detector: str
    confidence: str
    location: str
    value_masked: str
    start: int
    end: int
    page: Optional[int] = None
    sheet: Optional[str] = None
    cell: Optional[str] = None
    value: Optional[str] = field(default=None, repr=False)  # raw, only with raw_values=True
    evidence: List[Evidence] = field(default_factory=list)


@dataclass(frozen=True)
class Attachment:
    """An attachment or archive member with its metadata."""

    name: str
    location: str
    true_type: str
    declared_type: Optional[str]
    size: int
    sha256: str
    extension_mismatch: bool
    depth: int
    origin: Optional[str] = None
    properties: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Unscannable:
    """Something that could not be inspected: ``reason`` is ``encrypted``, ``limit_exceeded``, ..."""

    location: str
    reason: str
    detail: str


@dataclass
class Report:
    """What a scan found. ``headers`` maps ``subject``, ``from``, ``to``, ... to their values."""

    is_message: bool
    size: int
    headers: Dict[str, List[str]]
    attachments: List[Attachment]
    findings: List[Finding]
    unscannable: List[Unscannable]
    counts: Dict[str, DetectorCount] = field(default_factory=dict)
    _c: Any = field(default=None, repr=False, compare=False)
    _context: Optional[Context] = field(default=None, repr=False, compare=False)

    @property
    def subject(self) -> Optional[str]:
        v = self.headers.get("subject")
        return v[0] if v else None

    def detectors(self) -> List[str]:
        """Detector ids found, each once, in order of first finding."""
        return list(dict.fromkeys(f.detector for f in self.findings))

    def _handle(self) -> ctypes.c_void_p:
        if self._c is None or not self._c._ptr:
            raise StateError(101, "the report is closed")
        return self._c._ptr

    def close(self) -> None:
        """Releases the library's copy of the report now (also done when garbage-collected);
        the dataclass fields stay readable."""
        if self._c is not None:
            self._c.close()

    def to_json(self, show_values: bool = False) -> Dict[str, Any]:
        """The library's JSON report (masked values unless ``show_values``)."""
        out = ctypes.c_void_p()
        _check(_report_to_json(self._handle(), _JSON_SHOW_VALUES if show_values else 0, ctypes.byref(out)))
        return _take_json(out)


class _CReport(_Handle):
    """A report the caller owns (``ping32dlp_report_clone``)."""

    _free = staticmethod(_report_free)


class Scanner(_Handle):
    """Scans messages, files and text. One thread at a time (another gets :class:`BusyError`)."""

    _free = staticmethod(_scanner_free)

    def __init__(self, engine: Engine):
        out = ctypes.c_void_p()
        _check(_scanner_new(engine, ctypes.byref(out)))
        super().__init__(out)
        self._engine = engine  # the C scanner holds its own reference; this keeps ours alive too
        self._generation = 0
        self._report = ctypes.c_void_p()
        self._lock = threading.Lock()

    def add_password(self, password: str) -> None:
        """A password to try on encrypted zips and PDFs in the next scan only (passwords are
        per mail: pass ``passwords=`` to a ``scan_*`` call instead)."""
        _check(_scanner_add_password(self, _b(password)))

    def set_limit(self, name: str, value: int) -> None:
        """Sets an extraction limit: ``time_ms`` (the scan's time budget), ``entry_bytes``,
        ``message_decompressed``, ``archive_entries``, ``container_depth``, ... (see
        ``PING32DLP_LIMIT_*``). What a limit stops is reported as unscannable."""
        if name not in _LIMITS:
            raise ValueError(f"unknown limit {name!r}: one of {', '.join(_LIMITS)}")
        _check(_scanner_set_limit(self, _LIMITS[name], int(value)))

    def set_min_confidence(self, level: str) -> None:
        """Reports only findings at ``low``, ``medium`` or ``high`` confidence and above."""
        codes = {v: k for k, v in _CONFIDENCE.items()}
        if level not in codes:
            raise ValueError(f"unknown confidence {level!r}: low, medium or high")
        _check(_scanner_set_min_confidence(self, codes[level]))

    def set_encoding(self, label: Optional[str]) -> None:
        """Reads text and text files in this charset (``cp932``, ``euc-jp``, ...); None detects."""
        _check(_scanner_set_encoding(self, _b(label)))

    def scan_message(self, raw: bytes, context: Optional[Context] = None, *, raw_values: bool = False,
                     passwords: Sequence[str] = ()) -> Report:
        """Scans a raw RFC 5322 message (bytes). ``passwords`` are tried on encrypted
        attachments of this message only."""
        raw = _data(raw, "scan_message")
        return self._scan(lambda c, out: _scan_message(self, raw, len(raw), c, 0, out), context, raw_values, passwords)

    def scan_message_stream(self, source: Any, context: Optional[Context] = None, *, max_bytes: int = 0,
                            raw_values: bool = False, passwords: Sequence[str] = ()) -> Report:
        """Scans a message too large to hold as one buffer: ``source`` is a binary file object
        (read 1 MiB at a time) or an iterable of bytes chunks. The library spools it (memory,
        then an unlinked temporary file); at most ``max_bytes`` are stored (0: the default
        raw-message limit), and a longer message is reported unscannable."""
        stream = ctypes.c_void_p()
        _check(_stream_new(max_bytes, ctypes.byref(stream)))
        try:
            if hasattr(source, "read"):
                chunks = iter(lambda: source.read(1 << 20), b"")
            else:
                chunks = iter(source)
            for chunk in chunks:
                chunk = _data(chunk, "scan_message_stream chunk")
                _check(_stream_write(stream, chunk, len(chunk)))
            return self._scan(lambda c, out: _scan_message_stream(self, stream, c, 0, out), context, raw_values,
                              passwords)
        finally:
            _stream_free(stream)

    def scan_file(self, name: str, data: bytes, context: Optional[Context] = None, *, raw_values: bool = False,
                  passwords: Sequence[str] = ()) -> Report:
        """Scans one file called ``name`` (its extension is checked against the content)."""
        data = _data(data, "scan_file")
        return self._scan(lambda c, out: _scan_file(self, _b(name), data, len(data), c, 0, out), context, raw_values,
                          passwords)

    def scan_text(self, text: Union[str, bytes], context: Optional[Context] = None, *, raw_values: bool = False) -> Report:
        """Scans text (a str, or bytes in UTF-8, Shift_JIS, EUC-JP, ISO-2022-JP)."""
        data = text.encode("utf-8") if isinstance(text, str) else _data(text, "scan_text")
        return self._scan(lambda c, out: _scan_text(self, data, len(data), c, 0, out), context, raw_values, ())

    def _scan(self, call, context: Optional[Context], raw_values: bool, passwords: Sequence[str]) -> Report:
        if isinstance(passwords, (str, bytes)):
            raise TypeError("passwords takes a list of passwords, not one string")
        with self._lock:
            c = context._make() if context is not None else None
            try:
                for pw in passwords:
                    _check(_scanner_add_password(self, _b(pw)))
                out = ctypes.c_void_p()
                _check(call(c, ctypes.byref(out)))
                owned = ctypes.c_void_p()
                _check(_report_clone(out, ctypes.byref(owned)))
                return self._copy(_CReport(owned), raw_values, context)
            finally:
                if c is not None:
                    c.close()

    def _copy(self, owned: "_CReport", raw_values: bool, context: Optional[Context]) -> Report:
        r = owned._ptr
        headers = {}
        for name, code in _HEADERS.items():
            n = _report_header_count(r, code)
            if n:
                headers[name] = [_report_header(r, code, i).text() for i in range(n)]
        atts = []
        for i in range(_report_attachment_count(r)):
            a = _report_attachment(r, i)
            props = {}
            for k in ("title", "author", "last_modified_by"):
                v = _att_property(a, k.encode()).text()
                if v:
                    props[k] = v
            atts.append(Attachment(
                name=_att_name(a).text(), location=_att_location(a).text(),
                true_type=_att_true_type(a).text(), declared_type=_att_declared_type(a).text() or None,
                size=int(_att_size(a)), sha256=_att_sha256(a).text(),
                extension_mismatch=bool(_att_mismatch(a)), depth=int(_att_depth(a)),
                origin=_att_origin(a).text() or None, properties=props,
            ))
        findings = []
        for i in range(_report_finding_count(r)):
            f = _report_finding(r, i)
            page = int(_f_page(f))
            findings.append(Finding(
                detector=_f_detector(f).text(), confidence=_CONFIDENCE.get(int(_f_confidence(f)), "low"),
                location=_f_location(f).text(), value_masked=_f_masked(f).text(),
                start=int(_f_start(f)), end=int(_f_end(f)), page=page or None,
                sheet=_f_sheet(f).text() or None, cell=_f_cell(f).text() or None,
                value=_f_value(f).text() if raw_values else None,
                evidence=[
                    Evidence(_f_evidence_kind(f, j).text(), _f_evidence_detail(f, j).text(),
                             (lambda d: None if d < 0 else int(d))(_f_evidence_distance(f, j)))
                    for j in range(_f_evidence_count(f))
                ],
            ))
        unscannable = []
        for i in range(_report_unscannable_count(r)):
            u = _report_unscannable(r, i)
            unscannable.append(Unscannable(_u_location(u).text(), _u_reason(u).text(), _u_detail(u).text()))
        counts = {
            _report_detector_id(r, i).text(): DetectorCount(int(_report_detector_findings(r, i)),
                                                              int(_report_detector_unique(r, i)))
            for i in range(_report_detector_count(r))
        }
        return Report(
            is_message=bool(_report_is_message(r)), size=int(_report_size(r)), headers=headers,
            attachments=atts, findings=findings, unscannable=unscannable, counts=counts,
            _c=owned, _context=context,
        )


# ---------------------------------------------------------------------------------------------
# Policy, verdict, workflow.


class Action:
    """Actions from least to most severe (compare them as ints)."""

    ALLOW, AUDIT, TAG, ALERT, HOLD, BLOCK = range(6)
    NAMES = ("allow", "audit", "tag", "alert", "hold", "block")


@dataclass(frozen=True)
class RuleMatch:
    """A matched rule: its id, action, mode and the reasons in words."""

    id: str
    action: str
    monitor: bool
    severity: str
    reasons: List[str]


@dataclass(frozen=True)
class Verdict:
    """The final action (``allow`` ... ``block``), matched rules, risk, messages and tags."""

    action: str
    risk: int
    rules: List[RuleMatch]
    message_ja: str
    message_en: str
    headers: List[tuple]
    subject_prefix: Optional[str]
    would_action: str = "allow"  # with every monitor-mode rule enforced

    @property
    def blocks(self) -> bool:
        """True for hold and block: the mail must not go now."""
        return Action.NAMES.index(self.action) >= Action.HOLD


def _verdict(v: ctypes.c_void_p) -> Verdict:
    rules = []
    for i in range(_verdict_rule_count(v)):
        m = _verdict_rule(v, i)
        rules.append(RuleMatch(
            id=_rm_id(m).text(), action=Action.NAMES[_rm_action(m)], monitor=bool(_rm_is_monitor(m)),
            severity=_rm_severity(m).text(),
            reasons=[_rm_reason(m, j).text() for j in range(_rm_reason_count(m))],
        ))
    return Verdict(
        action=Action.NAMES[_verdict_action(v)], risk=int(_verdict_risk(v)), rules=rules,
        message_ja=_verdict_message(v, b"ja").text(), message_en=_verdict_message(v, b"en").text(),
        headers=[(_verdict_header_name(v, i).text(), _verdict_header_value(v, i).text())
                 for i in range(_verdict_header_count(v))],
        subject_prefix=_verdict_subject_prefix(v).text() or None,
        would_action=Action.NAMES[_verdict_would_action(v)],
    )


class Policy(_Handle):
    """A policy (see docs/policy.md). Use :meth:`load`, :meth:`parse` or :meth:`default`."""

    _free = staticmethod(_policy_free)

    @classmethod
    def load(cls, path: Union[str, os.PathLike], engine: Optional[Engine] = None) -> "Policy":
        """Loads a policy file; raises :class:`PolicyError` with file, line and field, and
        :class:`FileError` when it cannot be read. With ``engine``, a rule naming a detector
        the engine lacks (a typo) is a :class:`PolicyError` too (evaluation refuses such a
        policy anyway)."""
        out, err = ctypes.c_void_p(), ctypes.c_void_p()
        if engine is not None:
            code = _policy_load_for_engine(_b(path), engine, ctypes.byref(out), ctypes.byref(err))
        else:
            code = _policy_load(_b(path), ctypes.byref(out), ctypes.byref(err))
        if code == 201:
            raise _rule_error(PolicyError, code, err)
        _check(code)
        return cls(out)

    @classmethod
    def parse(cls, text: str, engine: Optional[Engine] = None) -> "Policy":
        """Parses a policy from TOML text (checked against ``engine`` when given)."""
        out, err = ctypes.c_void_p(), ctypes.c_void_p()
        if not isinstance(text, str):
            raise TypeError(f"Policy.parse takes the policy as str, not {type(text).__name__}")
        t = text.encode("utf-8")
        if engine is not None:
            code = _policy_parse_for_engine(t, len(t), engine, ctypes.byref(out), ctypes.byref(err))
        else:
            code = _policy_parse(t, len(t), ctypes.byref(out), ctypes.byref(err))
        if code == 201:
            raise _rule_error(PolicyError, code, err)
        _check(code)
        return cls(out)

    @classmethod
    def default(cls) -> "Policy":
        """The embedded monitor-mode policy."""
        out = ctypes.c_void_p()
        _check(_policy_new_default(ctypes.byref(out)))
        return cls(out)

    def check(self, engine: Engine) -> None:
        """Raises :class:`PolicyError` if the policy names detectors the engine lacks."""
        err = ctypes.c_void_p()
        code = _policy_check(self, engine, ctypes.byref(err))
        if code == 201:
            raise _rule_error(PolicyError, code, err)
        _check(code)

    def evaluate(self, report: Report, context: Optional[Context] = None) -> Verdict:
        """Judges a report without history (see :meth:`Workflow.record` for history)."""
        ctx = context if context is not None else report._context
        c = ctx._make() if ctx is not None else None
        out = ctypes.c_void_p()
        try:
            _check(_policy_evaluate(self, report._handle(), c, ctypes.byref(out)))
            try:
                return _verdict(out)
            finally:
                _verdict_free(out)
        finally:
            if c is not None:
                c.close()


@dataclass(frozen=True)
class Decision:
    """A recorded message: verdict, audit record id, and the approval id and link token if held."""

    verdict: Verdict
    record_id: int
    approval_id: Optional[str]
    approval_token: Optional[str] = field(default=None, repr=False)


class Workflow(_Handle):
    """The audit trail, approvals and alerts: SQLite in a state directory, or a shared store
    (``store="postgres://user@host:port/db"``; the password from ``$PING32DLP_STORE_PASSWORD``
    or ``$PGPASSWORD``). Thread-safe."""

    _free = staticmethod(_workflow_free)

    def __init__(
        self,
        state_dir: Optional[Union[str, os.PathLike]] = None,
        policy: Optional[Policy] = None,
        store: Optional[str] = None,
    ):
        out = ctypes.c_void_p()
        if store is None and state_dir is not None:
            _check(_workflow_open(_b(state_dir), policy, ctypes.byref(out)))
        else:
            sd = None if state_dir is None else _b(state_dir)
            _check(_workflow_open_store(None if store is None else _b(store), sd, policy, ctypes.byref(out)))
        super().__init__(out)
        self._callback = None

    def on_alert(self, callback: Optional[Callable[[Dict[str, Any]], None]]) -> None:
        """Calls ``callback(alert)`` with each alert (a dict), on the recording thread; None
        removes it. Exceptions raised by the callback are printed and ignored."""
        if callback is None:
            _check(_workflow_set_alert_callback(self, _ALERT_CB(), None))
            self._callback = None
            return

        def trampoline(_userdata, data, length):
            try:
                callback(json.loads(ctypes.string_at(data, length).decode("utf-8")))
            except Exception:  # never unwind into C
                import traceback

                traceback.print_exc()

        cb = _ALERT_CB(trampoline)
        _check(_workflow_set_alert_callback(self, cb, None))
        self._callback = cb  # keep it alive while the library may call it

    def record(self, policy: Policy, report: Report, context: Optional[Context] = None, raw: Optional[bytes] = None) -> Decision:
        """Judges a report with history and records it durably; ``raw`` is kept with a hold."""
        ctx = context if context is not None else report._context
        if raw is not None:
            raw = _data(raw, "Workflow.record raw")
        c = ctx._make() if ctx is not None else None
        out = ctypes.c_void_p()
        try:
            _check(_workflow_record(self, policy, report._handle(), c, raw, len(raw) if raw else 0, 0, ctypes.byref(out)))
        finally:
            if c is not None:
                c.close()
        try:
            return Decision(
                verdict=_verdict(_decision_verdict(out)), record_id=int(_decision_record_id(out)),
                approval_id=_decision_approval_id(out).text() or None,
                approval_token=_decision_approval_token(out).text() or None,
            )
        finally:
            _decision_free(out)

    def audit_record(self, record_id: int) -> Dict[str, Any]:
        """An audit record (masked) as a dict; :class:`NotFoundError` when absent."""
        out = ctypes.c_void_p()
        _check(_workflow_record_json(self, record_id, ctypes.byref(out)))
        return _take_json(out)

    def approvals(self, state: Optional[str] = None, approver: Optional[str] = None) -> List[Dict[str, Any]]:
        """Approval requests, newest first, optionally by state and approver."""
        out = ctypes.c_void_p()
        _check(_workflow_approvals_json(self, _b(state), _b(approver), ctypes.byref(out)))
        return _take_json(out)

    def approval(self, approval_id: str) -> Dict[str, Any]:
        """One approval with its ``events`` (views, decision, release)."""
        out = ctypes.c_void_p()
        _check(_workflow_approval_json(self, _b(approval_id), ctypes.byref(out)))
        return _take_json(out)

    def view(self, approval_id: str, actor: str, kind: str = "view", detail: Optional[str] = None) -> None:
        """Records that ``actor`` looked (``view``, ``view_attachment``, ``download``)."""
        _check(_workflow_approval_view(self, _b(approval_id), _b(actor), _b(kind), _b(detail)))

    def approve(self, approval_id: str, approver: str, comment: str = "", *, admin: bool = False) -> None:
        """Approves a pending request (the mail is released)."""
        _check(_workflow_approval_decide(self, _b(approval_id), _b(approver), True, _b(comment), _DECIDE_ADMIN if admin else 0))

    def reject(self, approval_id: str, approver: str, comment: str = "", *, admin: bool = False) -> None:
        """Rejects a pending request (the mail is discarded)."""
        _check(_workflow_approval_decide(self, _b(approval_id), _b(approver), False, _b(comment), _DECIDE_ADMIN if admin else 0))

    def verify_token(self, approval_id: str, token: str) -> bool:
        """True when ``token`` is the approval's link token."""
        try:
            _check(_workflow_approval_verify_token(self, _b(approval_id), _b(token)))
            return True
        except ForbiddenError:
            return False

    def held_message(self, approval_id: str) -> bytes:
        """The message kept with a hold, as it is to go out when approved (the verdict's tags
        and bcc change applied)."""
        data, n = ctypes.c_void_p(), _size()
        _check(_workflow_held_message(self, _b(approval_id), ctypes.byref(data), ctypes.byref(n)))
        try:
            return ctypes.string_at(data, n.value)
        finally:
            _bytes_free(data, n.value)

    def close_approval(self, approval_id: str, note: str = "") -> None:
        """Marks a decided request closed after the caller delivered or dropped the mail."""
        _check(_workflow_approval_close(self, _b(approval_id), _b(note)))

    def expire(self, now: int = 0) -> int:
        """Expires pending requests past their time; returns how many."""
        n = _size()
        _check(_workflow_expire(self, int(now), ctypes.byref(n)))
        return n.value
