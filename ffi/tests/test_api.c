/*
 * Every function of the C API, with NULL arguments, wrong sizes, out-of-range indices and
 * double use. Built with -fsanitize=address,undefined by scripts/ffi-test.sh:
 *
 *   test_api REPO_ROOT
 */
#define _DEFAULT_SOURCE 1 /* mkdtemp */
#include <ping32dlp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                              \
    do {                                                                         \
        checks++;                                                                \
        if (!(cond)) {                                                           \
            failures++;                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

#define OK(call) CHECK((call) == PING32DLP_OK)

static int str_eq(ping32dlp_str s, const char *want) {
    return s.data != NULL && s.len == strlen(want) && memcmp(s.data, want, s.len) == 0;
}

/* Findings of one detector in a report. */
static int findings_of(const ping32dlp_report *r, const char *detector) {
    int n = 0;
    for (size_t i = 0; i < ping32dlp_report_finding_count(r); i++)
        n += str_eq(ping32dlp_finding_detector(ping32dlp_report_finding(r, i)), detector);
    return n;
}


static int str_has(ping32dlp_str s, const char *needle) {
    size_t n = strlen(needle);
    if (s.data == NULL || n > s.len) return 0;
    for (size_t i = 0; i + n <= s.len; i++)
        if (memcmp(s.data + i, needle, n) == 0) return 1;
    return 0;
}

static unsigned char *read_file(const char *root, const char *rel, size_t *len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) { perror(path); exit(2); }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    fputs(text, f);
    fclose(f);
}

static void test_version_and_results(void) {
    CHECK(strcmp(ping32dlp_version(), "0.1.0") == 0);
    CHECK(PING32DLP_VERSION_MAJOR == 0 && PING32DLP_VERSION_MINOR == 1);
    CHECK(strncmp(ping32dlp_result_str(PING32DLP_OK), "PING32DLP_OK", 12) == 0);
    CHECK(strncmp(ping32dlp_result_str(PING32DLP_ERR_PANIC), "PING32DLP_ERR_PANIC", 19) == 0);
    CHECK(strcmp(ping32dlp_result_str(12345), "unknown result code") == 0);
    CHECK(ping32dlp_last_error() != NULL);
    ping32dlp_string_free(NULL);
    ping32dlp_bytes_free(NULL, 0);
}

static void test_engine_builder(const char *tmp) {
    ping32dlp_engine *engine = NULL;
    ping32dlp_engine_builder *b = NULL;
    ping32dlp_error *err = NULL;

    /* NULL outputs and handles */
    CHECK(ping32dlp_engine_new_builtin(NULL) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_engine_builder_new(NULL) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_engine_builder_add_rules(NULL, (const uint8_t *)"x", 1) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_engine_builder_add_rules_file(NULL, "x") == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_engine_builder_add_dictionary_file(NULL, "x") == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_engine_builder_without_builtins(NULL) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_engine_builder_build(NULL, &engine, &err) == PING32DLP_ERR_NULL);
    CHECK(engine == NULL && err == NULL);
    CHECK(ping32dlp_engine_detector_count(NULL) == 0);
    ping32dlp_engine_free(NULL);
    ping32dlp_engine_builder_free(NULL);
    ping32dlp_error_free(NULL);

    /* built-ins */
    OK(ping32dlp_engine_new_builtin(&engine));
    size_t builtin_count = ping32dlp_engine_detector_count(engine);
    CHECK(builtin_count >= 20);
    ping32dlp_engine_free(engine);
    engine = NULL;

    /* rules text, rules file and a dictionary */
    char rules_path[4096], dict_path[4096];
    snprintf(rules_path, sizeof rules_path, "%s/rules.toml", tmp);
    snprintf(dict_path, sizeof dict_path, "%s/projects.txt", tmp);
    write_file(rules_path,
               "[[detector]]\nid = \"employee_id\"\nname_en = \"Employee ID\"\n"
               "regex = 'EMP-[0-9]{6}'\nconfidence = \"high\"\n");
    write_file(dict_path, "プロジェクト青嵐\nProject Bluestorm\n");
    const char *kw = "[[keywords]]\nid = \"codename\"\nname_en = \"Code names\"\nterms = [\"Falcon-X\"]\n";
    OK(ping32dlp_engine_builder_new(&b));
    CHECK(ping32dlp_engine_builder_add_rules(b, NULL, 5) == PING32DLP_ERR_NULL); /* wrong size */
    OK(ping32dlp_engine_builder_add_rules(b, (const uint8_t *)kw, strlen(kw)));
    OK(ping32dlp_engine_builder_add_rules_file(b, rules_path));
    OK(ping32dlp_engine_builder_add_dictionary_file(b, dict_path));
    OK(ping32dlp_engine_builder_build(b, &engine, &err));
    CHECK(engine != NULL && err == NULL);
    CHECK(ping32dlp_engine_detector_count(engine) == builtin_count + 3);
    ping32dlp_scanner *s = NULL;
    const ping32dlp_report *r = NULL;
    OK(ping32dlp_scanner_new(engine, &s));
    const char *text = "社員番号 EMP-123456、プロジェクト青嵐と Falcon-X の件";
    OK(ping32dlp_scanner_scan_text(s, (const uint8_t *)text, strlen(text), NULL, 0, &r));
    CHECK(findings_of(r, "employee_id") == 1 && findings_of(r, "dictionary:projects") == 1 &&
          findings_of(r, "codename") == 1);
    ping32dlp_scanner_free(s); /* the engine is freed below, after the scanner: either order is fine */

    /* saved and loaded: the same findings from the loaded engine, after the original is gone */
    uint8_t *image = NULL;
    size_t image_len = 0;
    CHECK(ping32dlp_engine_serialize(NULL, &image, &image_len) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_engine_serialize(engine, NULL, &image_len) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_engine_serialize(engine, &image, NULL) == PING32DLP_ERR_NULL);
    CHECK(image == NULL);
    OK(ping32dlp_engine_serialize(engine, &image, &image_len));
    CHECK(image != NULL && image_len > 64 && memcmp(image, "PING32DLP-ENGINE", 16) == 0);
    ping32dlp_engine_free(engine);
    engine = NULL;
    CHECK(ping32dlp_engine_deserialize(NULL, 10, &engine) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_engine_deserialize(image, image_len, NULL) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_engine_deserialize((const uint8_t *)"hello", 5, &engine) == PING32DLP_ERR_ENGINE_IMAGE);
    CHECK(strstr(ping32dlp_last_error(), "not a libping32dlp engine") != NULL);
    CHECK(ping32dlp_engine_deserialize(image, image_len - 1, &engine) == PING32DLP_ERR_ENGINE_IMAGE);
    image[image_len / 2] ^= 0x5a; /* damaged: the checksum says so */
    CHECK(ping32dlp_engine_deserialize(image, image_len, &engine) == PING32DLP_ERR_ENGINE_IMAGE);
    CHECK(strstr(ping32dlp_last_error(), "checksum") != NULL);
    image[image_len / 2] ^= 0x5a;
    image[22] = '9'; /* another library version: named */
    CHECK(ping32dlp_engine_deserialize(image, image_len, &engine) == PING32DLP_ERR_ENGINE_IMAGE);
    CHECK(strstr(ping32dlp_last_error(), "build the engine again") != NULL);
    image[22] = '0';
    CHECK(engine == NULL);
    OK(ping32dlp_engine_deserialize(image, image_len, &engine));
    ping32dlp_bytes_free(image, image_len);
    CHECK(ping32dlp_engine_detector_count(engine) == builtin_count + 3);
    OK(ping32dlp_scanner_new(engine, &s));
    OK(ping32dlp_scanner_scan_text(s, (const uint8_t *)text, strlen(text), NULL, 0, &r));
    CHECK(findings_of(r, "employee_id") == 1 && findings_of(r, "dictionary:projects") == 1 &&
          findings_of(r, "codename") == 1);
    ping32dlp_scanner_free(s);
    ping32dlp_engine_free(engine);
    engine = NULL;

    /* without built-ins */
    OK(ping32dlp_engine_builder_new(&b));
    OK(ping32dlp_engine_builder_without_builtins(b));
    OK(ping32dlp_engine_builder_add_rules_file(b, rules_path));
    OK(ping32dlp_engine_builder_build(b, &engine, NULL));
    CHECK(ping32dlp_engine_detector_count(engine) == 1);
    ping32dlp_engine_free(engine);
    engine = NULL;

    /* a structured error: file, line, field */
    write_file(rules_path, "[[detector]]\nid = \"bad\"\nname_en = \"Bad\"\nregex = 'EMP-[0-9'\n");
    OK(ping32dlp_engine_builder_new(&b));
    OK(ping32dlp_engine_builder_add_rules_file(b, rules_path));
    CHECK(ping32dlp_engine_builder_build(b, &engine, &err) == PING32DLP_ERR_RULES);
    CHECK(engine == NULL && err != NULL);
    CHECK(str_has(ping32dlp_error_file(err), "rules.toml"));
    CHECK(ping32dlp_error_line(err) == 4);
    CHECK(ping32dlp_error_column(err) >= 1);
    CHECK(str_has(ping32dlp_error_field(err), "regex"));
    CHECK(str_has(ping32dlp_error_message(err), "rules.toml:4"));
    CHECK(strstr(ping32dlp_last_error(), "rules.toml:4") != NULL);
    ping32dlp_error_free(err);
    err = NULL;

    /* a missing file: line 0; malformed UTF-8 rules text; the first error wins */
    OK(ping32dlp_engine_builder_new(&b));
    OK(ping32dlp_engine_builder_add_rules_file(b, "/nonexistent/rules.toml"));
    OK(ping32dlp_engine_builder_add_rules(b, (const uint8_t *)"\xff\xfe", 2));
    CHECK(ping32dlp_engine_builder_build(b, &engine, &err) == PING32DLP_ERR_RULES);
    CHECK(ping32dlp_error_line(err) == 0);
    CHECK(str_has(ping32dlp_error_file(err), "/nonexistent/rules.toml"));
    ping32dlp_error_free(err);
    err = NULL;
    OK(ping32dlp_engine_builder_new(&b));
    OK(ping32dlp_engine_builder_add_rules(b, (const uint8_t *)"\xff\xfe", 2));
    CHECK(ping32dlp_engine_builder_build(b, &engine, NULL) == PING32DLP_ERR_RULES);
    CHECK(strstr(ping32dlp_last_error(), "UTF-8") != NULL);

    /* a builder freed unused; a NULL engine output leaves the builder consumed */
    OK(ping32dlp_engine_builder_new(&b));
    ping32dlp_engine_builder_free(b);
    OK(ping32dlp_engine_builder_new(&b));
    CHECK(ping32dlp_engine_builder_build(b, NULL, NULL) == PING32DLP_ERR_NULL);
}

static void test_context(void) {
    ping32dlp_context *c = NULL;
    CHECK(ping32dlp_context_new(NULL) == PING32DLP_ERR_NULL);
    OK(ping32dlp_context_new(&c));
    CHECK(ping32dlp_context_set(NULL, PING32DLP_CTX_USER, "u") == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_context_set(c, PING32DLP_CTX_USER, NULL) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_context_set(c, 999, "x") == PING32DLP_ERR_INVALID_ARGUMENT);
    CHECK(strstr(ping32dlp_last_error(), "999") != NULL);
    OK(ping32dlp_context_set(c, PING32DLP_CTX_CHANNEL, "proxy"));
    OK(ping32dlp_context_set(c, PING32DLP_CTX_USER, "ichiro"));
    OK(ping32dlp_context_set(c, PING32DLP_CTX_HOST, "PC-0042"));
    OK(ping32dlp_context_set(c, PING32DLP_CTX_CLIENT_APP, "Outlook"));
    OK(ping32dlp_context_set(c, PING32DLP_CTX_CLIENT_ADDR, "192.0.2.7"));
    OK(ping32dlp_context_set(c, PING32DLP_CTX_TLS, "TLSv1.3"));
    OK(ping32dlp_context_set(c, PING32DLP_CTX_ENVELOPE_FROM, "ichiro@example.co.jp"));
    OK(ping32dlp_context_set(c, PING32DLP_CTX_ENVELOPE_TO, "a@partner.example.com"));
    OK(ping32dlp_context_set(c, PING32DLP_CTX_ENVELOPE_TO, "b@example.co.jp"));
    OK(ping32dlp_context_set(c, PING32DLP_CTX_GROUP, "sales"));
    OK(ping32dlp_context_set(c, PING32DLP_CTX_QUEUE_ID, "4F1A2B3C"));
    OK(ping32dlp_context_set(c, PING32DLP_CTX_DEPARTMENT, "営業部"));
    OK(ping32dlp_context_set(c, PING32DLP_CTX_MANAGER, "bucho@example.co.jp"));
    CHECK(ping32dlp_context_set(c, 99, "x") == PING32DLP_ERR_INVALID_ARGUMENT);
    CHECK(ping32dlp_context_add_recipient_group(c, NULL, "役員") == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_context_add_recipient_group(NULL, "b@example.co.jp", "役員") == PING32DLP_ERR_NULL);
    OK(ping32dlp_context_add_recipient_group(c, "b@example.co.jp", "役員"));
    OK(ping32dlp_context_add_recipient_group(c, "b@example.co.jp", "sales"));
    OK(ping32dlp_context_set(c, PING32DLP_CTX_USER, "\xff\xfe not utf-8")); /* replaced, kept */
    CHECK(ping32dlp_context_add_origin(c, NULL, "x") == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_context_add_origin(NULL, "a", "x") == PING32DLP_ERR_NULL);
    OK(ping32dlp_context_add_origin(c, "見積書.docx", "C:\\Users\\ichiro\\見積書.docx"));
    CHECK(ping32dlp_context_set_time(NULL, 1) == PING32DLP_ERR_NULL);
    OK(ping32dlp_context_set_time(c, 1764300000));
    ping32dlp_context_free(c);
    ping32dlp_context_free(NULL);
}

static void test_scan(const char *root) {
    ping32dlp_engine *engine = NULL;
    ping32dlp_scanner *s = NULL;
    const ping32dlp_report *r = NULL;
    ping32dlp_context *c = NULL;
    size_t len = 0;
    unsigned char *mail = read_file(root, "corpus/extract/mail/01-iso2022jp-attachments.eml", &len);

    OK(ping32dlp_engine_new_builtin(&engine));
    CHECK(ping32dlp_scanner_new(NULL, &s) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_scanner_new(engine, NULL) == PING32DLP_ERR_NULL);
    OK(ping32dlp_scanner_new(engine, &s));
    OK(ping32dlp_context_new(&c));
    OK(ping32dlp_context_add_origin(c, "見積書.docx", "C:\\Users\\ichiro\\見積書.docx"));

    /* NULL and wrong arguments write nothing */
    CHECK(ping32dlp_scanner_scan_message(NULL, mail, len, NULL, 0, &r) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_scanner_scan_message(s, NULL, len, NULL, 0, &r) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_scanner_scan_message(s, mail, len, NULL, 0, NULL) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_scanner_scan_message(s, mail, len, NULL, 7, &r) == PING32DLP_ERR_INVALID_ARGUMENT);
    CHECK(ping32dlp_scanner_scan_message(s, mail, (size_t)-1, NULL, 0, &r) == PING32DLP_ERR_INVALID_ARGUMENT);
    CHECK(ping32dlp_scanner_scan_file(s, NULL, mail, len, NULL, 0, &r) == PING32DLP_ERR_NULL);
    CHECK(r == NULL);
    CHECK(ping32dlp_scanner_add_password(s, NULL) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_scanner_add_password(NULL, "pw") == PING32DLP_ERR_NULL);

    /* a message */
    OK(ping32dlp_scanner_scan_message(s, mail, len, c, 0, &r));
    CHECK(r != NULL);
    CHECK(ping32dlp_report_is_message(r));
    CHECK(ping32dlp_report_size(r) == len);
    CHECK(ping32dlp_report_header_count(r, PING32DLP_HEADER_SUBJECT) == 1);
    CHECK(str_has(ping32dlp_report_header(r, PING32DLP_HEADER_SUBJECT, 0), "見積書"));
    CHECK(ping32dlp_report_header_count(r, PING32DLP_HEADER_FROM) == 1);
    CHECK(ping32dlp_report_header_count(r, PING32DLP_HEADER_TO) >= 1);
    CHECK(ping32dlp_report_header(r, PING32DLP_HEADER_TO, 99).len == 0);
    CHECK(ping32dlp_report_header_count(r, 999) == 0);
    CHECK(ping32dlp_report_header(r, PING32DLP_HEADER_DATE, 0).len > 0);
    CHECK(ping32dlp_report_header(r, PING32DLP_HEADER_MESSAGE_ID, 0).len > 0);
    CHECK(ping32dlp_report_header_count(r, PING32DLP_HEADER_CC) <= 8);
    CHECK(ping32dlp_report_header_count(r, PING32DLP_HEADER_BCC) <= 8);
    CHECK(ping32dlp_report_header_count(r, PING32DLP_HEADER_REPLY_TO) <= 8);

    size_t na = ping32dlp_report_attachment_count(r);
    CHECK(na == 6);
    CHECK(ping32dlp_report_attachment(r, na) == NULL);
    const ping32dlp_attachment *a = ping32dlp_report_attachment(r, 0);
    CHECK(str_eq(ping32dlp_attachment_name(a), "見積書.docx"));
    CHECK(str_eq(ping32dlp_attachment_location(a), "見積書.docx"));
    CHECK(str_eq(ping32dlp_attachment_true_type(a), "docx"));
    CHECK(ping32dlp_attachment_declared_type(a).len > 0);
    CHECK(ping32dlp_attachment_sha256(a).len == 64);
    CHECK(str_has(ping32dlp_attachment_origin(a), "C:\\Users\\ichiro"));
    CHECK(ping32dlp_attachment_size(a) > 1000);
    CHECK(ping32dlp_attachment_depth(a) == 0);
    CHECK(!ping32dlp_attachment_extension_mismatch(a));
    CHECK(ping32dlp_attachment_property(a, NULL).len == 0);
    CHECK(ping32dlp_attachment_property(a, "no-such-key").len == 0);
    (void)ping32dlp_attachment_property(a, "author");
    CHECK(ping32dlp_attachment_origin(ping32dlp_report_attachment(r, 1)).len == 0);
    CHECK(ping32dlp_attachment_depth(ping32dlp_report_attachment(r, 4)) == 1);
    CHECK(ping32dlp_attachment_name(NULL).len == 0 && ping32dlp_attachment_name(NULL).data != NULL);
    CHECK(ping32dlp_attachment_size(NULL) == 0);

    size_t nf = ping32dlp_report_finding_count(r);
    CHECK(nf >= 20);
    CHECK(ping32dlp_report_finding(r, nf) == NULL);
    int my_number = 0, cells = 0;
    for (size_t i = 0; i < nf; i++) {
        const ping32dlp_finding *f = ping32dlp_report_finding(r, i);
        CHECK(ping32dlp_finding_end(f) > ping32dlp_finding_start(f));
        CHECK(ping32dlp_finding_location(f).len > 0);
        CHECK(ping32dlp_finding_value_masked(f).len > 0);
        CHECK(ping32dlp_finding_value(f).len > 0);
        ping32dlp_confidence conf = ping32dlp_finding_confidence(f);
        CHECK(conf >= PING32DLP_CONFIDENCE_LOW && conf <= PING32DLP_CONFIDENCE_HIGH);
        if (str_eq(ping32dlp_finding_detector(f), "jp_my_number")) {
            my_number++;
            CHECK(!str_eq(ping32dlp_finding_value_masked(f), "")); /* masked */
            CHECK(str_has(ping32dlp_finding_value_masked(f), "*"));
        }
        if (ping32dlp_finding_cell(f).len > 0) {
            cells++;
            CHECK(ping32dlp_finding_sheet(f).len > 0);
        }
        CHECK(ping32dlp_finding_page(f) == 0);
    }
    CHECK(my_number >= 4);
    CHECK(cells >= 1);
    CHECK(ping32dlp_finding_detector(NULL).len == 0);
    CHECK(ping32dlp_finding_confidence(NULL) == PING32DLP_CONFIDENCE_HIGH); /* the cautious side */
    CHECK(ping32dlp_finding_start(NULL) == 0 && ping32dlp_finding_end(NULL) == 0);
    CHECK(ping32dlp_report_unscannable_count(r) == 0);
    CHECK(ping32dlp_report_unscannable(r, 0) == NULL);

    /* JSON: masked by default, raw values only when asked */
    char *json = NULL, *raw_json = NULL;
    CHECK(ping32dlp_report_to_json(NULL, 0, &json) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_report_to_json(r, 0, NULL) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_report_to_json(r, 0x80, &json) == PING32DLP_ERR_INVALID_ARGUMENT);
    CHECK(json == NULL);
    OK(ping32dlp_report_to_json(r, 0, &json));
    OK(ping32dlp_report_to_json(r, PING32DLP_JSON_SHOW_VALUES, &raw_json));
    const ping32dlp_finding *f0 = ping32dlp_report_finding(r, 1);
    ping32dlp_str raw = ping32dlp_finding_value(f0);
    char rawbuf[256];
    snprintf(rawbuf, sizeof rawbuf, "%.*s", (int)raw.len, raw.data);
    CHECK(strstr(json, "\"findings\"") != NULL);
    CHECK(strstr(json, rawbuf) == NULL);
    CHECK(strstr(raw_json, rawbuf) != NULL);
    ping32dlp_string_free(json);
    ping32dlp_string_free(raw_json);

    /* an encrypted zip: unscannable, with the member still listed */
    free(mail);
    mail = read_file(root, "corpus/extract/mail/04a-ppap-zip.eml", &len);
    OK(ping32dlp_scanner_scan_message(s, mail, len, NULL, 0, &r));
    CHECK(ping32dlp_report_unscannable_count(r) >= 1);
    const ping32dlp_unscannable *u = ping32dlp_report_unscannable(r, 0);
    CHECK(str_eq(ping32dlp_unscannable_reason(u), "encrypted"));
    CHECK(str_has(ping32dlp_unscannable_location(u), "資料.zip"));
    CHECK(ping32dlp_unscannable_detail(u).len > 0);
    CHECK(ping32dlp_unscannable_reason(NULL).len == 0);
    CHECK(ping32dlp_unscannable_location(NULL).len == 0);
    CHECK(ping32dlp_unscannable_detail(NULL).len == 0);

    /* a file, renamed: extension mismatch */
    size_t dlen = 0;
    unsigned char *docx = NULL;
    {
        /* The first attachment of message 01 is a docx; scan its bytes as "photo.jpg" via the
           corpus copy of the document. */
        docx = read_file(root, "corpus/extract/docs/見積書.docx", &dlen);
    }
    OK(ping32dlp_scanner_scan_file(s, "photo.jpg", docx, dlen, NULL, 0, &r));
    CHECK(!ping32dlp_report_is_message(r));
    CHECK(ping32dlp_report_header_count(r, PING32DLP_HEADER_SUBJECT) == 0);
    CHECK(ping32dlp_report_attachment_count(r) == 1);
    CHECK(ping32dlp_attachment_extension_mismatch(ping32dlp_report_attachment(r, 0)));
    CHECK(ping32dlp_report_finding_count(r) >= 3);
    free(docx);

    /* text in Shift_JIS: 個人番号 1234 5678 9018 */
    const char sjis[] = "\x8c\xc2\x90\x6c\x94\xd4\x8d\x86 1234 5678 9018";
    OK(ping32dlp_scanner_scan_text(s, (const uint8_t *)sjis, sizeof sjis - 1, NULL, 0, &r));
    CHECK(ping32dlp_report_finding_count(r) == 1);
    CHECK(str_eq(ping32dlp_finding_detector(ping32dlp_report_finding(r, 0)), "jp_my_number"));
    CHECK(str_eq(ping32dlp_finding_location(ping32dlp_report_finding(r, 0)), "text"));
    CHECK(ping32dlp_finding_confidence(ping32dlp_report_finding(r, 0)) == PING32DLP_CONFIDENCE_HIGH);

    /* empty and hostile input is not an error */
    OK(ping32dlp_scanner_scan_message(s, NULL, 0, NULL, 0, &r));
    CHECK(ping32dlp_report_finding_count(r) == 0);
    unsigned char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)(i * 131 + 7);
    OK(ping32dlp_scanner_scan_message(s, junk, sizeof junk, NULL, 0, &r));
    OK(ping32dlp_scanner_scan_file(s, "x.zip", junk, sizeof junk, NULL, 0, &r));
    memcpy(junk, "PK\x03\x04", 4);
    OK(ping32dlp_scanner_scan_file(s, "x.zip", junk, sizeof junk, NULL, 0, &r));

    /* double use: a scan replaces the previous report; a wrong password does not open it */
    OK(ping32dlp_scanner_add_password(s, "wrong-password"));
    OK(ping32dlp_scanner_scan_message(s, mail, len, NULL, 0, &r));
    OK(ping32dlp_scanner_scan_message(s, mail, len, NULL, 0, &r));
    CHECK(ping32dlp_report_unscannable_count(r) >= 1);

    /* PPAP passwords belong to one scan: the right one opens the zip once, then is forgotten */
    OK(ping32dlp_scanner_add_password(s, "Xy7#kP2q"));
    OK(ping32dlp_scanner_scan_message(s, mail, len, NULL, 0, &r));
    CHECK(ping32dlp_report_unscannable_count(r) == 0);
    OK(ping32dlp_scanner_scan_message(s, mail, len, NULL, 0, &r));
    CHECK(ping32dlp_report_unscannable_count(r) >= 1);

    /* a report the caller owns outlives the next scan and the scanner */
    ping32dlp_report *kept = NULL;
    CHECK(ping32dlp_report_clone(NULL, &kept) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_report_clone(r, NULL) == PING32DLP_ERR_NULL);
    OK(ping32dlp_report_clone(r, &kept));
    ping32dlp_report_free((ping32dlp_report *)r); /* a scan's own report: refused, left alone */
    CHECK(strstr(ping32dlp_last_error(), "belongs to its scanner") != NULL);
    CHECK(ping32dlp_report_unscannable_count(r) >= 1);
    const char sj2[] = "\x8c\xc2\x90\x6c\x94\xd4\x8d\x86 1234 5678 9018";
    OK(ping32dlp_scanner_scan_text(s, (const uint8_t *)sj2, sizeof sj2 - 1, NULL, 0, &r));
    CHECK(ping32dlp_report_unscannable_count(kept) >= 1);
    CHECK(str_has(ping32dlp_unscannable_location(ping32dlp_report_unscannable(kept, 0)), "資料.zip"));

    /* per-detector counts and evidence as accessors */
    CHECK(ping32dlp_report_detector_count(r) == 1);
    CHECK(str_eq(ping32dlp_report_detector_id(r, 0), "jp_my_number"));
    CHECK(ping32dlp_report_detector_findings(r, 0) == 1);
    CHECK(ping32dlp_report_detector_unique(r, 0) == 1);
    CHECK(ping32dlp_report_detector_id(r, 1).len == 0);
    CHECK(ping32dlp_report_detector_count(NULL) == 0);
    const ping32dlp_finding *ef = ping32dlp_report_finding(r, 0);
    size_t ne = ping32dlp_finding_evidence_count(ef);
    CHECK(ne >= 2);
    int saw_context = 0, saw_checksum = 0;
    for (size_t i = 0; i < ne; i++) {
        if (str_eq(ping32dlp_finding_evidence_kind(ef, i), "context")) {
            saw_context = 1;
            CHECK(str_eq(ping32dlp_finding_evidence_detail(ef, i), "個人番号"));
            CHECK(ping32dlp_finding_evidence_distance(ef, i) >= 0);
        }
        if (str_eq(ping32dlp_finding_evidence_kind(ef, i), "checksum")) saw_checksum = 1;
    }
    CHECK(saw_context && saw_checksum);
    CHECK(ping32dlp_finding_evidence_kind(ef, ne).len == 0);
    CHECK(ping32dlp_finding_evidence_distance(ef, ne) == -1);
    CHECK(ping32dlp_finding_evidence_count(NULL) == 0);

    /* setters: minimum confidence, forced charset, limits (the time budget included) */
    CHECK(ping32dlp_scanner_set_min_confidence(s, 7) == PING32DLP_ERR_INVALID_ARGUMENT);
    CHECK(ping32dlp_scanner_set_min_confidence(NULL, 1) == PING32DLP_ERR_NULL);
    const char lowtext[] = "1234 5678 9018"; /* a My Number without context: low confidence */
    OK(ping32dlp_scanner_scan_text(s, (const uint8_t *)lowtext, sizeof lowtext - 1, NULL, 0, &r));
    size_t low_n = ping32dlp_report_finding_count(r);
    CHECK(low_n >= 1);
    OK(ping32dlp_scanner_set_min_confidence(s, PING32DLP_CONFIDENCE_HIGH));
    OK(ping32dlp_scanner_scan_text(s, (const uint8_t *)lowtext, sizeof lowtext - 1, NULL, 0, &r));
    CHECK(ping32dlp_report_finding_count(r) == 0);
    CHECK(ping32dlp_report_detector_count(r) == 0);
    OK(ping32dlp_scanner_set_min_confidence(s, PING32DLP_CONFIDENCE_LOW));
    CHECK(ping32dlp_scanner_set_encoding(s, "klingon") == PING32DLP_ERR_INVALID_ARGUMENT);
    /* EUC-JP bytes of 個人番号 read as EUC-JP by force */
    const char euc[] = "\xb8\xc4\xbf\xcd\xc8\xd6\xb9\xe6 1234 5678 9018";
    OK(ping32dlp_scanner_set_encoding(s, "euc-jp"));
    OK(ping32dlp_scanner_scan_text(s, (const uint8_t *)euc, sizeof euc - 1, NULL, 0, &r));
    CHECK(ping32dlp_report_finding_count(r) == 1);
    CHECK(ping32dlp_finding_confidence(ping32dlp_report_finding(r, 0)) == PING32DLP_CONFIDENCE_HIGH);
    OK(ping32dlp_scanner_set_encoding(s, NULL));
    CHECK(ping32dlp_scanner_set_limit(s, 999, 1) == PING32DLP_ERR_INVALID_ARGUMENT);
    CHECK(ping32dlp_scanner_set_limit(s, PING32DLP_LIMIT_ARCHIVE_ENTRIES, 0) == PING32DLP_ERR_INVALID_ARGUMENT);
    OK(ping32dlp_scanner_set_limit(s, PING32DLP_LIMIT_MIME_PARTS, 1));
    size_t fwd_len = 0;
    unsigned char *fwd = read_file(root, "corpus/extract/mail/03-forwarded.eml", &fwd_len);
    OK(ping32dlp_scanner_scan_message(s, fwd, fwd_len, NULL, 0, &r));
    free(fwd);
    int limited = 0;
    for (size_t i = 0; i < ping32dlp_report_unscannable_count(r); i++)
        if (str_eq(ping32dlp_unscannable_reason(ping32dlp_report_unscannable(r, i)), "limit_exceeded")) limited = 1;
    CHECK(limited);
    OK(ping32dlp_scanner_set_limit(s, PING32DLP_LIMIT_MIME_PARTS, 10000));
    OK(ping32dlp_scanner_set_limit(s, PING32DLP_LIMIT_TIME_MS, 60000));

    ping32dlp_context_free(c);
    ping32dlp_scanner_free(s);
    /* the clone outlives its scanner */
    CHECK(ping32dlp_report_unscannable_count(kept) >= 1);
    ping32dlp_report_free(kept);
    ping32dlp_report_free(NULL);

    /* the engine's detector list */
    size_t nd = ping32dlp_engine_detector_count(engine);
    int saw_mynumber = 0;
    for (size_t i = 0; i < nd; i++) {
        if (str_eq(ping32dlp_engine_detector_id(engine, i), "jp_my_number")) {
            saw_mynumber = 1;
            CHECK(ping32dlp_engine_detector_name(engine, i, "en").len > 0);
            CHECK(ping32dlp_engine_detector_name(engine, i, "ja").len > 0);
        }
    }
    CHECK(saw_mynumber);
    CHECK(ping32dlp_engine_detector_id(engine, nd).len == 0);
    CHECK(ping32dlp_engine_detector_id(NULL, 0).len == 0);
    ping32dlp_engine_free(engine);
    free(mail);
}

static const char *POLICY =
    "[policy]\nname = \"c-test\"\ninternal_domains = [\"example.co.jp\"]\n"
    "[[rule]]\nid = \"mynumber-hold\"\naction = \"hold\"\nseverity = \"high\"\n"
    "approvers = [\"boss@example.co.jp\"]\nexpires = \"1h\"\n"
    "when.all = [{ recipients = \"any_external\" }, { detector = [\"jp_my_number\"], min_unique = 1 }]\n"
    "[[rule]]\nid = \"tag-external\"\naction = \"tag\"\nadd_header = \"X-DLP: checked\"\n"
    "subject_prefix = \"[DLP] \"\nwhen = { recipients = \"any_external\" }\n"
    "[[rule]]\nid = \"watch-cards\"\naction = \"block\"\nmode = \"monitor\"\n"
    "when = { detector = [\"credit_card\"] }\n"
    "[approval]\nnotify_command = \"\"\n";

static int alerts_seen = 0;
static void on_alert(void *userdata, const char *json, size_t len) {
    int *count = userdata;
    (*count)++;
    if (json == NULL || strlen(json) != len || strstr(json, "\"action\"") == NULL) (*count) += 1000;
}

static void test_policy_and_workflow(const char *root, const char *tmp) {
    ping32dlp_engine *engine = NULL;
    ping32dlp_scanner *s = NULL;
    ping32dlp_policy *policy = NULL, *monitor = NULL;
    ping32dlp_error *err = NULL;
    ping32dlp_verdict *v = NULL;
    const ping32dlp_report *r = NULL;
    size_t len = 0;
    unsigned char *mail = read_file(root, "corpus/extract/mail/01-iso2022jp-attachments.eml", &len);

    OK(ping32dlp_engine_new_builtin(&engine));
    OK(ping32dlp_scanner_new(engine, &s));

    /* policies: parse, load, default, errors */
    CHECK(ping32dlp_policy_parse(NULL, 4, &policy, &err) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_policy_parse((const uint8_t *)POLICY, strlen(POLICY), NULL, &err) == PING32DLP_ERR_NULL);
    OK(ping32dlp_policy_parse((const uint8_t *)POLICY, strlen(POLICY), &policy, &err));
    CHECK(policy != NULL && err == NULL);
    OK(ping32dlp_policy_check(policy, engine, &err));
    CHECK(ping32dlp_policy_check(NULL, engine, &err) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_policy_check(policy, NULL, &err) == PING32DLP_ERR_NULL);
    const char *bad = "[[rule]]\nid = \"x\"\naction = \"explode\"\nwhen = { channel = \"api\" }\n";
    ping32dlp_policy *p2 = NULL;
    CHECK(ping32dlp_policy_parse((const uint8_t *)bad, strlen(bad), &p2, &err) == PING32DLP_ERR_POLICY);
    CHECK(p2 == NULL && err != NULL);
    CHECK(ping32dlp_error_line(err) == 3);
    CHECK(str_has(ping32dlp_error_field(err), "action"));
    ping32dlp_error_free(err);
    err = NULL;
    const char *unknown = "[[rule]]\nid = \"x\"\naction = \"block\"\nwhen = { detector = [\"no_such\"] }\n";
    OK(ping32dlp_policy_parse((const uint8_t *)unknown, strlen(unknown), &p2, NULL));
    CHECK(ping32dlp_policy_check(p2, engine, &err) == PING32DLP_ERR_POLICY);
    CHECK(str_has(ping32dlp_error_message(err), "no_such"));
    ping32dlp_error_free(err);
    err = NULL;
    ping32dlp_policy_free(p2);
    p2 = NULL;
    char ppath[4096];
    snprintf(ppath, sizeof ppath, "%s/policy.toml", tmp);
    write_file(ppath, POLICY);
    OK(ping32dlp_policy_load(ppath, &p2, &err));
    ping32dlp_policy_free(p2);
    p2 = NULL;
    /* a file that cannot be read is an I/O error (not a policy error); error_out untouched */
    CHECK(ping32dlp_policy_load("/nonexistent/policy.toml", &p2, &err) == PING32DLP_ERR_IO);
    CHECK(err == NULL && p2 == NULL);
    CHECK(strstr(ping32dlp_last_error(), "/nonexistent/policy.toml") != NULL);
    /* policy text errors are named as policy text, not rules */
    CHECK(ping32dlp_policy_parse((const uint8_t *)bad, strlen(bad), &p2, &err) == PING32DLP_ERR_POLICY);
    CHECK(str_has(ping32dlp_error_message(err), "<policy>:3:"));
    CHECK(!str_has(ping32dlp_error_message(err), "rules"));
    ping32dlp_error_free(err);
    err = NULL;

    /* a typo'd detector: refused when loaded for the engine, and at evaluation */
    const char *typo = "[[rule]]\nid = \"cards\"\naction = \"block\"\nwhen = { detector = [\"credit_crad\"] }\n";
    CHECK(ping32dlp_policy_parse_for_engine((const uint8_t *)typo, strlen(typo), engine, &p2, &err) == PING32DLP_ERR_POLICY);
    CHECK(p2 == NULL && err != NULL);
    CHECK(str_has(ping32dlp_error_message(err), "credit_crad"));
    CHECK(str_has(ping32dlp_error_message(err), "cards"));
    CHECK(str_has(ping32dlp_error_field(err), "rule[0].when.detector[0]"));
    CHECK(ping32dlp_error_line(err) == 4 && ping32dlp_error_column(err) > 1);
    ping32dlp_error_free(err);
    err = NULL;
    CHECK(ping32dlp_policy_parse_for_engine((const uint8_t *)typo, strlen(typo), NULL, &p2, &err) == PING32DLP_ERR_NULL);
    char tpath[4096];
    snprintf(tpath, sizeof tpath, "%s/typo.toml", tmp);
    write_file(tpath, typo);
    CHECK(ping32dlp_policy_load_for_engine(tpath, engine, &p2, &err) == PING32DLP_ERR_POLICY);
    CHECK(str_has(ping32dlp_error_file(err), "typo.toml"));
    ping32dlp_error_free(err);
    err = NULL;
    CHECK(ping32dlp_policy_load_for_engine("/nonexistent/p.toml", engine, &p2, &err) == PING32DLP_ERR_IO);
    CHECK(err == NULL);
    OK(ping32dlp_policy_load_for_engine(ppath, engine, &p2, &err));
    ping32dlp_policy_free(p2);
    p2 = NULL;
    OK(ping32dlp_policy_parse((const uint8_t *)typo, strlen(typo), &p2, NULL)); /* unchecked load */
    {
        const ping32dlp_report *tr = NULL;
        ping32dlp_verdict *tv = NULL;
        OK(ping32dlp_scanner_scan_text(s, (const uint8_t *)"4111 1111 1111 1111", 19, NULL, 0, &tr));
        CHECK(ping32dlp_policy_evaluate(p2, tr, NULL, &tv) == PING32DLP_ERR_POLICY);
        CHECK(tv == NULL);
        CHECK(strstr(ping32dlp_last_error(), "credit_crad") != NULL);
    }
    ping32dlp_policy_free(p2);
    p2 = NULL;
    CHECK(ping32dlp_policy_new_default(NULL) == PING32DLP_ERR_NULL);
    OK(ping32dlp_policy_new_default(&monitor));

    /* monitor mode: the built-in policy says allow, and what it would do */
    {
        const char *cards = "カード番号 4111 1111 1111 1111, 5555 5555 5555 4444, 4012 8888 8888 1881";
        const ping32dlp_report *cr = NULL;
        ping32dlp_verdict *mv = NULL;
        ping32dlp_context *to_partner = NULL;
        OK(ping32dlp_context_new(&to_partner));
        OK(ping32dlp_context_set(to_partner, PING32DLP_CTX_ENVELOPE_FROM, "ichiro@example.co.jp"));
        OK(ping32dlp_context_set(to_partner, PING32DLP_CTX_ENVELOPE_TO, "buyer@partner.example.com"));
        OK(ping32dlp_scanner_scan_text(s, (const uint8_t *)cards, strlen(cards), NULL, 0, &cr));
        OK(ping32dlp_policy_evaluate(monitor, cr, to_partner, &mv));
        ping32dlp_context_free(to_partner);
        CHECK(ping32dlp_verdict_action(mv) == PING32DLP_ACTION_ALLOW);
        CHECK(ping32dlp_verdict_would_action(mv) > PING32DLP_ACTION_ALLOW);
        CHECK(strcmp(ping32dlp_action_str(ping32dlp_verdict_action(mv)), "allow") == 0);
        ping32dlp_verdict_free(mv);
    }
    {
        /* action bcc: the external To/Cc addresses to take out of the headers */
        static const char *BCC_POLICY =
            "[policy]\ninternal_domains = [\"example.co.jp\"]\n"
            "[[rule]]\nid = \"visible-to-bcc\"\naction = \"bcc\"\n"
            "when = { to_external_count = { min = 2 } }\n";
        static const char *BCC_MAIL =
            "From: ichiro@example.co.jp\r\nTo: a@partner.example.com, jiro@example.co.jp\r\n"
            "Cc: B@Other.example.org\r\nSubject: x\r\n\r\nhello\r\n";
        ping32dlp_policy *bp = NULL;
        ping32dlp_error *berr = NULL;
        OK(ping32dlp_policy_parse((const uint8_t *)BCC_POLICY, strlen(BCC_POLICY), &bp, &berr));
        const ping32dlp_report *br = NULL;
        ping32dlp_verdict *bv = NULL;
        OK(ping32dlp_scanner_scan_message(s, (const uint8_t *)BCC_MAIL, strlen(BCC_MAIL), NULL, 0, &br));
        OK(ping32dlp_policy_evaluate(bp, br, NULL, &bv));
        CHECK(ping32dlp_verdict_action(bv) == PING32DLP_ACTION_BCC);
        CHECK(strcmp(ping32dlp_action_str(PING32DLP_ACTION_BCC), "bcc") == 0);
        CHECK(ping32dlp_verdict_bcc_count(bv) == 2);
        CHECK(str_eq(ping32dlp_verdict_bcc(bv, 0), "a@partner.example.com"));
        CHECK(str_eq(ping32dlp_verdict_bcc(bv, 1), "b@other.example.org"));
        CHECK(ping32dlp_verdict_bcc(bv, 2).len == 0);
        CHECK(ping32dlp_verdict_bcc_count(NULL) == 0);
        CHECK(ping32dlp_verdict_bcc(NULL, 0).len == 0);
        ping32dlp_verdict_free(bv);
        ping32dlp_policy_free(bp);
    }
    CHECK(strcmp(ping32dlp_action_str(PING32DLP_ACTION_BLOCK), "block") == 0);
    CHECK(strcmp(ping32dlp_action_str(PING32DLP_ACTION_DELAY), "delay") == 0);
    CHECK(strcmp(ping32dlp_action_str(99), "unknown") == 0);
    CHECK(strcmp(ping32dlp_confidence_str(PING32DLP_CONFIDENCE_MEDIUM), "medium") == 0);
    CHECK(strcmp(ping32dlp_confidence_str(0), "unknown") == 0);

    /* evaluate without history */
    OK(ping32dlp_scanner_scan_message(s, mail, len, NULL, 0, &r));
    CHECK(ping32dlp_policy_evaluate(NULL, r, NULL, &v) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_policy_evaluate(policy, NULL, NULL, &v) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_policy_evaluate(policy, r, NULL, NULL) == PING32DLP_ERR_NULL);
    OK(ping32dlp_policy_evaluate(policy, r, NULL, &v));
    CHECK(ping32dlp_verdict_action(v) == PING32DLP_ACTION_HOLD);
    CHECK(ping32dlp_verdict_risk(v) > 0);
    CHECK(ping32dlp_verdict_rule_count(v) == 3);
    const ping32dlp_rule_match *m = ping32dlp_verdict_rule(v, 0);
    CHECK(str_eq(ping32dlp_rule_match_id(m), "mynumber-hold"));
    CHECK(ping32dlp_rule_match_action(m) == PING32DLP_ACTION_HOLD);
    CHECK(!ping32dlp_rule_match_is_monitor(m));
    CHECK(str_eq(ping32dlp_rule_match_severity(m), "high"));
    CHECK(ping32dlp_rule_match_reason_count(m) == 2);
    CHECK(str_has(ping32dlp_rule_match_reason(m, 1), "jp_my_number"));
    CHECK(ping32dlp_rule_match_reason(m, 2).len == 0);
    const ping32dlp_rule_match *watch = ping32dlp_verdict_rule(v, 2);
    CHECK(ping32dlp_rule_match_is_monitor(watch));
    CHECK(ping32dlp_rule_match_action(watch) == PING32DLP_ACTION_BLOCK);
    CHECK(ping32dlp_verdict_rule(v, 3) == NULL);
    CHECK(ping32dlp_rule_match_id(NULL).len == 0);
    CHECK(ping32dlp_rule_match_action(NULL) == PING32DLP_ACTION_BLOCK);
    CHECK(!ping32dlp_rule_match_is_monitor(NULL));
    CHECK(ping32dlp_rule_match_reason_count(NULL) == 0);
    CHECK(ping32dlp_verdict_header_count(v) == 1);
    CHECK(str_eq(ping32dlp_verdict_header_name(v, 0), "X-DLP"));
    CHECK(str_eq(ping32dlp_verdict_header_value(v, 0), "checked"));
    CHECK(ping32dlp_verdict_header_name(v, 1).len == 0);
    CHECK(str_eq(ping32dlp_verdict_subject_prefix(v), "[DLP] "));
    CHECK(ping32dlp_verdict_message(v, "ja").len > 0);
    CHECK(ping32dlp_verdict_message(v, NULL).len > 0);
    char *vj = NULL;
    OK(ping32dlp_verdict_to_json(v, &vj));
    CHECK(strstr(vj, "\"would_action\":\"block\"") != NULL);
    ping32dlp_string_free(vj);
    CHECK(ping32dlp_verdict_to_json(NULL, &vj) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_verdict_action(NULL) == PING32DLP_ACTION_BLOCK); /* never "allow" for a mistake */
    CHECK(ping32dlp_verdict_would_action(NULL) == PING32DLP_ACTION_BLOCK);
    CHECK(ping32dlp_verdict_risk(NULL) == 100);
    ping32dlp_verdict_free(v);
    ping32dlp_verdict_free(NULL);
    v = NULL;
    OK(ping32dlp_policy_evaluate(monitor, r, NULL, &v));
    CHECK(ping32dlp_verdict_action(v) == PING32DLP_ACTION_ALLOW); /* monitor mode */
    CHECK(ping32dlp_verdict_rule_count(v) >= 1);
    ping32dlp_verdict_free(v);
    v = NULL;

    /* workflow: open, record, approvals, views, decisions, alerts, persistence */
    char state[4096];
    snprintf(state, sizeof state, "%s/state", tmp);
    ping32dlp_workflow *wf = NULL;
    CHECK(ping32dlp_workflow_open(NULL, policy, &wf) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_workflow_open(state, policy, NULL) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_workflow_open("/proc/no/such/dir", NULL, &wf) == PING32DLP_ERR_IO);
    CHECK(wf == NULL);
    OK(ping32dlp_workflow_open(state, policy, &wf));
    CHECK(ping32dlp_workflow_set_alert_callback(NULL, on_alert, &alerts_seen) == PING32DLP_ERR_NULL);
    OK(ping32dlp_workflow_set_alert_callback(wf, on_alert, &alerts_seen));

    ping32dlp_context *c = NULL;
    OK(ping32dlp_context_new(&c));
    OK(ping32dlp_context_set(c, PING32DLP_CTX_CHANNEL, "proxy"));
    OK(ping32dlp_context_set(c, PING32DLP_CTX_USER, "ichiro"));
    ping32dlp_decision *d = NULL;
    CHECK(ping32dlp_workflow_record(NULL, policy, r, c, NULL, 0, 0, &d) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_workflow_record(wf, NULL, r, c, NULL, 0, 0, &d) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_workflow_record(wf, policy, NULL, c, NULL, 0, 0, &d) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_workflow_record(wf, policy, r, c, NULL, 0, 1, &d) == PING32DLP_ERR_INVALID_ARGUMENT);
    CHECK(ping32dlp_workflow_record(wf, policy, r, c, NULL, 10, 0, &d) == PING32DLP_ERR_NULL);
    CHECK(d == NULL);
    OK(ping32dlp_workflow_record(wf, policy, r, c, mail, len, 0, &d));
    CHECK(alerts_seen == 1);
    const ping32dlp_verdict *dv = ping32dlp_decision_verdict(d);
    CHECK(ping32dlp_verdict_action(dv) == PING32DLP_ACTION_HOLD);
    int64_t rec = ping32dlp_decision_record_id(d);
    CHECK(rec > 0);
    ping32dlp_str aid = ping32dlp_decision_approval_id(d);
    ping32dlp_str tok = ping32dlp_decision_approval_token(d);
    CHECK(aid.len > 0 && tok.len > 0);
    char id[128], token[256];
    snprintf(id, sizeof id, "%.*s", (int)aid.len, aid.data);
    snprintf(token, sizeof token, "%.*s", (int)tok.len, tok.data);
    CHECK(ping32dlp_decision_verdict(NULL) == NULL);
    {
        /* a hold with no change to the body: no rewritten message */
        const uint8_t *body = (const uint8_t *)"x";
        size_t body_len = 1;
        OK(ping32dlp_decision_message(d, &body, &body_len));
        CHECK(body == NULL && body_len == 0);
        CHECK(ping32dlp_decision_message(NULL, &body, &body_len) == PING32DLP_ERR_NULL);
        CHECK(ping32dlp_decision_message(d, NULL, &body_len) == PING32DLP_ERR_NULL);
    }
    CHECK(ping32dlp_decision_record_id(NULL) == 0);
    CHECK(ping32dlp_decision_approval_id(NULL).len == 0);

    char *j = NULL;
    OK(ping32dlp_workflow_record_json(wf, rec, &j));
    CHECK(strstr(j, "\"user\":\"ichiro\"") != NULL);
    CHECK(strstr(j, "\"channel\":\"proxy\"") != NULL);
    ping32dlp_string_free(j);
    j = NULL;
    CHECK(ping32dlp_workflow_record_json(wf, 999999, &j) == PING32DLP_ERR_NOT_FOUND);

    OK(ping32dlp_workflow_approval_verify_token(wf, id, token));
    CHECK(ping32dlp_workflow_approval_verify_token(wf, id, "forged") == PING32DLP_ERR_FORBIDDEN);
    CHECK(ping32dlp_workflow_approval_verify_token(wf, "nope", token) == PING32DLP_ERR_NOT_FOUND);

    OK(ping32dlp_workflow_approvals_json(wf, "pending", NULL, &j));
    CHECK(strstr(j, id) != NULL);
    ping32dlp_string_free(j);
    OK(ping32dlp_workflow_approvals_json(wf, NULL, "boss@example.co.jp", &j));
    CHECK(strstr(j, id) != NULL);
    ping32dlp_string_free(j);
    j = NULL;
    CHECK(ping32dlp_workflow_approvals_json(wf, "sideways", NULL, &j) == PING32DLP_ERR_INVALID_ARGUMENT);

    CHECK(ping32dlp_workflow_approval_view(wf, id, "boss@example.co.jp", "stare", NULL) == PING32DLP_ERR_INVALID_ARGUMENT);
    CHECK(ping32dlp_workflow_approval_view(wf, "nope", "boss@example.co.jp", "view", NULL) == PING32DLP_ERR_NOT_FOUND);
    OK(ping32dlp_workflow_approval_view(wf, id, "boss@example.co.jp", "view", NULL));
    OK(ping32dlp_workflow_approval_view(wf, id, "boss@example.co.jp", "download", "見積書.docx"));

    uint8_t *held = NULL;
    size_t held_len = 0;
    OK(ping32dlp_workflow_held_message(wf, id, &held, &held_len));
    /* kept as it is to go out: the tag rule's header and subject prefix added, the rest as sent */
    {
        CHECK(held_len > len && memcmp(held, "X-DLP: checked", 14) == 0);
        int prefixed = 0;
        for (size_t i = 0; i + 15 <= held_len && !prefixed; i++)
            prefixed = memcmp(held + i, "Subject: [DLP] ", 15) == 0;
        CHECK(prefixed);
        CHECK(memcmp(held + held_len - 200, mail + len - 200, 200) == 0);
    }
    ping32dlp_bytes_free(held, held_len);
    CHECK(ping32dlp_workflow_held_message(wf, "nope", &held, &held_len) == PING32DLP_ERR_NOT_FOUND);

    CHECK(ping32dlp_workflow_approval_decide(wf, id, "mallory@example.co.jp", true, NULL, 0) == PING32DLP_ERR_FORBIDDEN);
    CHECK(ping32dlp_workflow_approval_decide(wf, id, "boss@example.co.jp", true, NULL, 8) == PING32DLP_ERR_INVALID_ARGUMENT);
    OK(ping32dlp_workflow_approval_decide(wf, id, "boss@example.co.jp", true, "ok, known partner", 0));
    /* double use: a second decision is refused */
    CHECK(ping32dlp_workflow_approval_decide(wf, id, "boss@example.co.jp", false, NULL, 0) == PING32DLP_ERR_ALREADY_DECIDED);
    OK(ping32dlp_workflow_approval_close(wf, id, "relayed"));
    CHECK(ping32dlp_workflow_approval_close(wf, id, "relayed") == PING32DLP_ERR_ALREADY_DECIDED);
    OK(ping32dlp_workflow_approval_json(wf, id, &j));
    CHECK(strstr(j, "\"state\":\"released\"") != NULL);
    CHECK(strstr(j, "\"kind\":\"download\"") != NULL);
    CHECK(strstr(j, "\"kind\":\"approve\"") != NULL);
    CHECK(strstr(j, "\"decided_by\":\"boss@example.co.jp\"") != NULL);
    ping32dlp_string_free(j);
    j = NULL;
    CHECK(ping32dlp_workflow_approval_json(wf, "nope", &j) == PING32DLP_ERR_NOT_FOUND);
    ping32dlp_decision_free(d);
    d = NULL;

    /* a second hold, rejected by an admin; a third one expires */
    OK(ping32dlp_workflow_record(wf, policy, r, c, NULL, 0, 0, &d));
    aid = ping32dlp_decision_approval_id(d);
    snprintf(id, sizeof id, "%.*s", (int)aid.len, aid.data);
    OK(ping32dlp_workflow_approval_decide(wf, id, "admin", false, NULL, PING32DLP_DECIDE_ADMIN));
    ping32dlp_decision_free(d);
    OK(ping32dlp_workflow_record(wf, policy, r, c, NULL, 0, 0, &d));
    size_t expired = 0;
    OK(ping32dlp_workflow_expire(wf, 4102444800, &expired)); /* 2100-01-01 */
    CHECK(expired == 1);
    OK(ping32dlp_workflow_expire(wf, 0, NULL));
    CHECK(ping32dlp_workflow_expire(NULL, 0, NULL) == PING32DLP_ERR_NULL);
    ping32dlp_decision_free(d);
    ping32dlp_decision_free(NULL);
    CHECK(alerts_seen == 3);
    OK(ping32dlp_workflow_set_alert_callback(wf, NULL, NULL));
    OK(ping32dlp_workflow_record(wf, policy, r, c, NULL, 0, 0, &d));
    CHECK(alerts_seen == 3);
    rec = ping32dlp_decision_record_id(d);
    ping32dlp_decision_free(d);
    {
        /* action link: the attachment replaced by a download link in the message to send */
        static const char *LINK_POLICY =
            "[policy]\ninternal_domains = [\"example.co.jp\"]\n"
            "[links]\nurl = \"https://dl.example.co.jp\"\n"
            "[[rule]]\nid = \"no-ppap\"\nmode = \"enforce\"\naction = \"link\"\n"
            "when = { attachment_count = { min = 1 } }\n";
        static const char *LINK_MAIL =
            "From: ichiro@example.co.jp\r\nTo: a@partner.example.com\r\nSubject: q\r\n"
            "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n"
            "Content-Type: text/plain\r\n\r\nsee file\r\n--b\r\n"
            "Content-Type: application/octet-stream; name=\"q.bin\"\r\n"
            "Content-Transfer-Encoding: base64\r\n"
            "Content-Disposition: attachment; filename=\"q.bin\"\r\n\r\nUVVPVEVEQVRB\r\n--b--\r\n";
        ping32dlp_policy *lp = NULL;
        ping32dlp_error *lerr = NULL;
        OK(ping32dlp_policy_parse((const uint8_t *)LINK_POLICY, strlen(LINK_POLICY), &lp, &lerr));
        const ping32dlp_report *lr = NULL;
        OK(ping32dlp_scanner_scan_message(s, (const uint8_t *)LINK_MAIL, strlen(LINK_MAIL), NULL, 0, &lr));
        ping32dlp_decision *ld = NULL;
        OK(ping32dlp_workflow_record(wf, lp, lr, c, (const uint8_t *)LINK_MAIL, strlen(LINK_MAIL), 0, &ld));
        CHECK(ping32dlp_verdict_action(ping32dlp_decision_verdict(ld)) == PING32DLP_ACTION_LINK);
        CHECK(strcmp(ping32dlp_action_str(PING32DLP_ACTION_LINK), "link") == 0);
        const uint8_t *out = NULL;
        size_t out_len = 0;
        OK(ping32dlp_decision_message(ld, &out, &out_len));
        CHECK(out != NULL && out_len > 0);
        if (out) {
            char *copy = calloc(out_len + 1, 1);
            memcpy(copy, out, out_len);
            CHECK(strncmp(copy, LINK_MAIL, 80) == 0);     /* the headers are the original's */
            CHECK(strstr(copy, "UVVPVEVEQVRB") == NULL);  /* the file is gone */
            CHECK(strstr(copy, "filename=") == NULL);
            free(copy);
        }
        ping32dlp_decision_free(ld);
        /* without the message, a link verdict cannot be carried out: refused */
        OK(ping32dlp_workflow_record(wf, lp, lr, c, NULL, 0, 0, &ld));
        CHECK(ping32dlp_verdict_action(ping32dlp_decision_verdict(ld)) == PING32DLP_ACTION_BLOCK);
        ping32dlp_decision_free(ld);
        ping32dlp_policy_free(lp);
    }
    ping32dlp_workflow_free(wf);
    ping32dlp_workflow_free(NULL);

    /* persistence: a reopened workflow has the records and approvals (opened by "store URL":
       NULL is SQLite in the state directory) */
    wf = NULL;
    CHECK(ping32dlp_workflow_open_store("mysql://x@db/dlp", state, NULL, &wf) == PING32DLP_ERR_INVALID_ARGUMENT);
    CHECK(wf == NULL);
    CHECK(strstr(ping32dlp_last_error(), "postgres://") != NULL);
    CHECK(ping32dlp_workflow_open_store(NULL, state, NULL, NULL) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_workflow_open_store("postgres://dlp:secret@127.0.0.1:1/dlp", state, NULL, &wf) == PING32DLP_ERR_DATABASE);
    CHECK(strstr(ping32dlp_last_error(), "secret") == NULL);
    OK(ping32dlp_workflow_open_store(NULL, state, NULL, &wf));
    OK(ping32dlp_workflow_record_json(wf, rec, &j));
    ping32dlp_string_free(j);
    /* the rejected and the expired request: their kept mail is discarded at once */
    OK(ping32dlp_workflow_approvals_json(wf, "discarded", NULL, &j));
    const char *first = strstr(j, "\"state\":\"discarded\"");
    CHECK(first != NULL && strstr(first + 1, "\"state\":\"discarded\"") != NULL);
    ping32dlp_string_free(j);
    ping32dlp_workflow_free(wf);

    ping32dlp_context_free(c);
    ping32dlp_policy_free(policy);
    ping32dlp_policy_free(monitor);
    ping32dlp_policy_free(NULL);
    ping32dlp_scanner_free(s);
    ping32dlp_engine_free(engine);
    free(mail);
}

/* A message written in pieces: the same report as the whole buffer, in memory and (a 3 MiB
 * mail) through the temporary file; a message over the stream's limit is unscannable. */
static void test_message_stream(const char *root) {
    ping32dlp_engine *engine = NULL;
    ping32dlp_scanner *s = NULL;
    ping32dlp_message_stream *st = NULL;
    const ping32dlp_report *r = NULL;
    size_t len = 0;
    unsigned char *mail = read_file(root, "corpus/extract/mail/01-iso2022jp-attachments.eml", &len);
    OK(ping32dlp_engine_new_builtin(&engine));
    OK(ping32dlp_scanner_new(engine, &s));
    OK(ping32dlp_scanner_scan_message(s, mail, len, NULL, 0, &r));
    size_t whole = ping32dlp_report_finding_count(r);
    CHECK(whole > 0);

    CHECK(ping32dlp_message_stream_new(0, NULL) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_message_stream_write(NULL, mail, len) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_message_stream_len(NULL) == 0);
    ping32dlp_message_stream_free(NULL);
    r = NULL;
    CHECK(ping32dlp_scanner_scan_message_stream(s, NULL, NULL, 0, &r) == PING32DLP_ERR_NULL);
    CHECK(r == NULL);

    /* small: in memory, written 100 bytes at a time */
    OK(ping32dlp_message_stream_new(0, &st));
    CHECK(ping32dlp_message_stream_write(st, NULL, 5) == PING32DLP_ERR_NULL);
    for (size_t at = 0; at < len; at += 100) OK(ping32dlp_message_stream_write(st, mail + at, len - at < 100 ? len - at : 100));
    CHECK(ping32dlp_message_stream_len(st) == len);
    OK(ping32dlp_scanner_scan_message_stream(s, st, NULL, 0, &r));
    CHECK(ping32dlp_report_finding_count(r) == whole);
    CHECK(ping32dlp_report_size(r) == len);
    CHECK(ping32dlp_message_stream_write(st, mail, 1) == PING32DLP_ERR_INVALID_ARGUMENT); /* scanned */
    OK(ping32dlp_scanner_scan_message_stream(s, st, NULL, 0, &r)); /* again: same */
    CHECK(ping32dlp_report_finding_count(r) == whole);
    ping32dlp_message_stream_free(st);

    /* large: the mail with 3 MiB of headers' worth of filler before its body goes to disk */
    const char *filler = "X-Filler: nothing to see here, a long header line of filler text\r\n";
    OK(ping32dlp_message_stream_new(0, &st));
    size_t written = 0;
    while (written < (3u << 20)) {
        OK(ping32dlp_message_stream_write(st, (const uint8_t *)filler, strlen(filler)));
        written += strlen(filler);
    }
    OK(ping32dlp_message_stream_write(st, mail, len));
    CHECK(ping32dlp_message_stream_len(st) == written + len);
    OK(ping32dlp_scanner_scan_message_stream(s, st, NULL, 0, &r));
    CHECK(ping32dlp_report_finding_count(r) == whole);
    CHECK(ping32dlp_report_size(r) == written + len);
    ping32dlp_message_stream_free(st);

    /* over the stream's limit: unscannable, no findings from a part of it */
    OK(ping32dlp_message_stream_new(1000, &st));
    OK(ping32dlp_message_stream_write(st, mail, len));
    OK(ping32dlp_scanner_scan_message_stream(s, st, NULL, 0, &r));
    CHECK(ping32dlp_report_finding_count(r) == 0);
    CHECK(ping32dlp_report_unscannable_count(r) == 1);
    CHECK(str_has(ping32dlp_unscannable_reason(ping32dlp_report_unscannable(r, 0)), "limit"));
    ping32dlp_message_stream_free(st);

    ping32dlp_scanner_free(s);
    ping32dlp_engine_free(engine);
    free(mail);
}

/* The endpoint fleet without a server: clear errors, and the pushed-policy hand-over. */
static void test_agent_offline(const char *tmp) {
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/agent", tmp);
    ping32dlp_workflow *wf = NULL;
    CHECK(ping32dlp_agent_open("ftp://x", NULL, dir, NULL, &wf) == PING32DLP_ERR_INVALID_ARGUMENT);
    CHECK(ping32dlp_agent_open(NULL, NULL, dir, NULL, &wf) == PING32DLP_ERR_NULL);
    CHECK(ping32dlp_agent_open("http://127.0.0.1:9", NULL, dir, NULL, &wf) == PING32DLP_ERR_IO);
    CHECK(strstr(ping32dlp_last_error(), "not enrolled") != NULL);
    CHECK(wf == NULL);
    CHECK(ping32dlp_agent_enrol("http://127.0.0.1:9", NULL, "token", "bad name", dir, NULL) == PING32DLP_ERR_INVALID_ARGUMENT);
    /* plain http:// only on loopback: the credential must not cross a network in clear */
    CHECK(ping32dlp_agent_enrol("http://dlp.example.co.jp:8025", NULL, "token", "pc1", dir, NULL) != PING32DLP_OK);
    CHECK(strstr(ping32dlp_last_error(), "https://") != NULL);
    /* nobody listens on port 9: an error, not a hang and not a credential */
    CHECK(ping32dlp_agent_enrol("http://127.0.0.1:9", NULL, "token", "pc1", dir, NULL) == PING32DLP_ERR_DATABASE);
    snprintf(path, sizeof path, "%s/agent.credential", dir);
    CHECK(access(path, F_OK) != 0);

    ping32dlp_engine *e = NULL;
    OK(ping32dlp_engine_new_builtin(&e));
    ping32dlp_policy *p = (ping32dlp_policy *)1;
    int64_t version = 0;
    ping32dlp_error *err = NULL;
    /* nothing fetched yet: OK and no policy */
    OK(ping32dlp_agent_policy_update(dir, e, &p, &version, &err));
    CHECK(p == NULL && version == 0);
    CHECK(ping32dlp_agent_policy_update(dir, NULL, &p, &version, &err) == PING32DLP_ERR_NULL);
    /* a pushed policy that names a detector this engine lacks: refused with its position */
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/fleet-policy.new.toml", dir);
    write_file(path, "# ping32dlp fleet policy version 4 (sha256 x, uploaded by admin)\n[policy]\nname = \"pushed\"\n\n"
                     "[[rule]]\nid = \"r\"\naction = \"block\"\nwhen = { detector = [\"credit_crad\"] }\n");
    CHECK(ping32dlp_agent_policy_update(dir, e, &p, &version, &err) == PING32DLP_ERR_POLICY);
    CHECK(p == NULL && err != NULL);
    CHECK(err != NULL && ping32dlp_error_line(err) == 8);
    CHECK(access(path, F_OK) != 0); /* set aside, not retried */
    ping32dlp_error_free(err);
    err = NULL;
    /* a good one: taken, with its version, and kept as the agent's policy */
    write_file(path, "# ping32dlp fleet policy version 5 (sha256 x, uploaded by admin)\n[policy]\nname = \"pushed\"\n\n"
                     "[[rule]]\nid = \"r\"\naction = \"block\"\nwhen = { detector = [\"credit_card\"] }\n");
    OK(ping32dlp_agent_policy_update(dir, e, &p, &version, &err));
    CHECK(p != NULL && version == 5 && err == NULL);
    snprintf(path, sizeof path, "%s/fleet-policy.toml", dir);
    CHECK(access(path, F_OK) == 0);
    ping32dlp_policy_free(p);
    p = NULL;
    OK(ping32dlp_agent_policy_update(dir, e, &p, NULL, NULL));
    CHECK(p == NULL);
    ping32dlp_engine_free(e);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s REPO_ROOT\n", argv[0]);
        return 2;
    }
    char tmp[] = "/tmp/ping32dlp-ctest-XXXXXX";
    if (!mkdtemp(tmp)) { perror("mkdtemp"); return 2; }
    test_version_and_results();
    test_engine_builder(tmp);
    test_message_stream(argv[1]);
    test_context();
    test_scan(argv[1]);
    test_policy_and_workflow(argv[1], tmp);
    test_agent_offline(tmp);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    printf("test_api: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
