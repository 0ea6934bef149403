/*
 * One program, three libraries that each bring their own copies of common code: the static
 * libping32dlp.a (with SQLite and a Rust standard library inside), the system's libsqlite3,
 * and another Rust static library. Built by scripts/ffi-test.sh; it must link without
 * duplicate symbols, use the system's SQLite for its own sqlite3_* calls, and scan.
 *
 *   link_mix EXPECTED_SQLITE_VERSION
 */
#include <ping32dlp.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

uint64_t other_rust_checksum(const char *s);

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    /* the program's own SQLite is the system's, not the copy inside libping32dlp.a */
    if (strcmp(sqlite3_libversion(), argv[1]) != 0) {
        fprintf(stderr, "sqlite3_libversion() = %s, expected the system's %s\n", sqlite3_libversion(), argv[1]);
        return 1;
    }
    sqlite3 *db = NULL;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK || sqlite3_exec(db, "CREATE TABLE t(x)", 0, 0, 0) != SQLITE_OK)
        return 1;
    sqlite3_close(db);
    /* the other Rust library works */
    if (other_rust_checksum("abc") != 294) return 1;
    /* and libping32dlp scans */
    ping32dlp_engine *e = NULL;
    ping32dlp_scanner *s = NULL;
    const ping32dlp_report *r = NULL;
    const char *text = "個人番号 1234 5678 9018";
    if (ping32dlp_engine_new_builtin(&e) || ping32dlp_scanner_new(e, &s) ||
        ping32dlp_scanner_scan_text(s, (const uint8_t *)text, strlen(text), NULL, 0, &r))
        return 1;
    size_t n = ping32dlp_report_finding_count(r);
    ping32dlp_scanner_free(s);
    ping32dlp_engine_free(e);
    printf("sqlite %s, other Rust library, libping32dlp %s: %zu finding\n", sqlite3_libversion(), ping32dlp_version(), n);
    return n == 1 ? 0 : 1;
}
