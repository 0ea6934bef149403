/*
 * Threads: one engine, policy and workflow shared by many threads, each with its own scanner,
 * scanning and recording concurrently; and a scanner wrongly shared by threads, which must get
 * PING32DLP_ERR_BUSY instead of undefined behaviour. The engine the threads share is a saved
 * one (ping32dlp_engine_serialize, then _deserialize after the original is freed), with a
 * keyword list and a 20,000-term dictionary; every thread must find what the original engine
 * found. Built with -fsanitize=address,undefined.
 *
 *   test_threads REPO_ROOT
 */
#define _DEFAULT_SOURCE 1 /* mkdtemp */
#include <ping32dlp.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THREADS 8
#define ROUNDS 25

static ping32dlp_engine *engine;
static ping32dlp_policy *policy;
static ping32dlp_workflow *workflow;
static unsigned char *mail;
static size_t mail_len;
static atomic_int failures;
static atomic_int recorded;
static atomic_int alerts;
static atomic_int ok_scans;
static atomic_int busy_scans;
static size_t expected_findings;

static void on_alert(void *userdata, const char *json, size_t len) {
    (void)userdata;
    if (json != NULL && len > 0) atomic_fetch_add(&alerts, 1);
}

static void fail(const char *what, ping32dlp_result r) {
    fprintf(stderr, "%s: %s (%s)\n", what, ping32dlp_result_str(r), ping32dlp_last_error());
    atomic_fetch_add(&failures, 1);
}

static void *worker(void *arg) {
    int id = (int)(long)arg;
    ping32dlp_scanner *s = NULL;
    ping32dlp_context *c = NULL;
    ping32dlp_result r;
    if ((r = ping32dlp_scanner_new(engine, &s)) != PING32DLP_OK) { fail("scanner_new", r); return NULL; }
    if ((r = ping32dlp_context_new(&c)) != PING32DLP_OK) { fail("context_new", r); return NULL; }
    char user[32];
    snprintf(user, sizeof user, "user%d", id);
    ping32dlp_context_set(c, PING32DLP_CTX_USER, user);
    for (int i = 0; i < ROUNDS; i++) {
        const ping32dlp_report *rep = NULL;
        if ((r = ping32dlp_scanner_scan_message(s, mail, mail_len, c, 0, &rep)) != PING32DLP_OK) {
            fail("scan", r);
            continue;
        }
        if (ping32dlp_report_finding_count(rep) != expected_findings) {
            fprintf(stderr, "thread %d: %zu findings, expected %zu\n", id,
                    ping32dlp_report_finding_count(rep), expected_findings);
            atomic_fetch_add(&failures, 1);
        }
        ping32dlp_verdict *v = NULL;
        if ((r = ping32dlp_policy_evaluate(policy, rep, c, &v)) != PING32DLP_OK) fail("evaluate", r);
        else if (ping32dlp_verdict_action(v) != PING32DLP_ACTION_BLOCK) {
            fprintf(stderr, "thread %d: unexpected action\n", id);
            atomic_fetch_add(&failures, 1);
        }
        ping32dlp_verdict_free(v);
        if (i % 5 == 0) {
            ping32dlp_decision *d = NULL;
            if ((r = ping32dlp_workflow_record(workflow, policy, rep, c, NULL, 0, 0, &d)) != PING32DLP_OK)
                fail("record", r);
            else if (ping32dlp_decision_record_id(d) <= 0) atomic_fetch_add(&failures, 1);
            else atomic_fetch_add(&recorded, 1);
            ping32dlp_decision_free(d);
        }
    }
    ping32dlp_context_free(c);
    ping32dlp_scanner_free(s);
    return NULL;
}

static ping32dlp_scanner *shared;

static void *misuser(void *arg) {
    (void)arg;
    const char *text = "個人番号 1234 5678 9018 カード 4111 1111 1111 1111";
    for (int i = 0; i < 200; i++) {
        const ping32dlp_report *rep = NULL;
        ping32dlp_result r = ping32dlp_scanner_scan_text(shared, (const uint8_t *)text, strlen(text),
                                                         NULL, 0, &rep);
        if (r == PING32DLP_OK) atomic_fetch_add(&ok_scans, 1);
        else if (r == PING32DLP_ERR_BUSY) atomic_fetch_add(&busy_scans, 1);
        else fail("shared scan", r);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s REPO_ROOT\n", argv[0]);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/corpus/extract/mail/01-iso2022jp-attachments.eml", argv[1]);
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); return 2; }
    fseek(f, 0, SEEK_END);
    mail_len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    mail = malloc(mail_len);
    if (fread(mail, 1, mail_len, f) != mail_len) { perror(path); return 2; }
    fclose(f);

    const char *pol = "[policy]\ninternal_domains = [\"example.co.jp\"]\n"
                      "[[rule]]\nid = \"block-mynumber\"\naction = \"block\"\n"
                      "when = { detector = [\"jp_my_number\"] }\n";
    char tmp[] = "/tmp/ping32dlp-threads-XXXXXX";
    if (!mkdtemp(tmp)) { perror("mkdtemp"); return 2; }
    ping32dlp_result r;
    /* an engine with rules and a dictionary, saved, freed, and loaded from the bytes */
    char dict[4200];
    snprintf(dict, sizeof dict, "%s/customers.txt", tmp);
    FILE *df = fopen(dict, "w");
    if (!df) { perror(dict); return 2; }
    for (int i = 0; i < 20000; i++) fprintf(df, "customer-%05d\n", i);
    fprintf(df, "%s\n", "機密");
    fclose(df);
    const char *rules = "[[keywords]]\nid = \"codenames\"\nterms = [\"Project Falcon\", \"見積\"]\n";
    ping32dlp_engine_builder *b = NULL;
    ping32dlp_engine *original = NULL;
    ping32dlp_engine_builder_new(&b);
    ping32dlp_engine_builder_add_rules(b, (const uint8_t *)rules, strlen(rules));
    ping32dlp_engine_builder_add_dictionary_file(b, dict);
    if ((r = ping32dlp_engine_builder_build(b, &original, NULL)) != PING32DLP_OK) { fail("build", r); return 1; }
    uint8_t *image = NULL;
    size_t image_len = 0;
    if ((r = ping32dlp_engine_serialize(original, &image, &image_len)) != PING32DLP_OK) { fail("serialize", r); return 1; }
    size_t original_detectors = ping32dlp_engine_detector_count(original);
    /* the expected result, from one scan with the original engine */
    ping32dlp_scanner *s = NULL;
    const ping32dlp_report *rep = NULL;
    ping32dlp_scanner_new(original, &s);
    ping32dlp_scanner_scan_message(s, mail, mail_len, NULL, 0, &rep);
    expected_findings = ping32dlp_report_finding_count(rep);
    ping32dlp_scanner_free(s);
    ping32dlp_engine_free(original);
    if ((r = ping32dlp_engine_deserialize(image, image_len, &engine)) != PING32DLP_OK) { fail("deserialize", r); return 1; }
    ping32dlp_bytes_free(image, image_len);
    if (ping32dlp_engine_detector_count(engine) != original_detectors) {
        fprintf(stderr, "loaded engine: %zu detectors, original %zu\n",
                ping32dlp_engine_detector_count(engine), original_detectors);
        atomic_fetch_add(&failures, 1);
    }
    if ((r = ping32dlp_policy_parse((const uint8_t *)pol, strlen(pol), &policy, NULL)) != PING32DLP_OK) {
        fail("policy", r);
        return 1;
    }
    if ((r = ping32dlp_workflow_open(tmp, policy, &workflow)) != PING32DLP_OK) { fail("workflow", r); return 1; }
    ping32dlp_workflow_set_alert_callback(workflow, on_alert, NULL);

    if (expected_findings == 0) {
        fprintf(stderr, "the test mail gave no findings\n");
        atomic_fetch_add(&failures, 1);
    }

    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);

    /* a scanner shared against the rules: BUSY, never a crash */
    ping32dlp_scanner_new(engine, &shared);
    pthread_t m[4];
    for (long i = 0; i < 4; i++) pthread_create(&m[i], NULL, misuser, (void *)i);
    for (int i = 0; i < 4; i++) pthread_join(m[i], NULL);
    ping32dlp_scanner_free(shared);

    int want = THREADS * ((ROUNDS + 4) / 5);
    if (atomic_load(&recorded) != want) {
        fprintf(stderr, "recorded %d, expected %d\n", atomic_load(&recorded), want);
        atomic_fetch_add(&failures, 1);
    }
    if (atomic_load(&alerts) != want) {
        fprintf(stderr, "alerts %d, expected %d\n", atomic_load(&alerts), want);
        atomic_fetch_add(&failures, 1);
    }
    if (atomic_load(&ok_scans) + atomic_load(&busy_scans) != 800 || atomic_load(&ok_scans) == 0) {
        fprintf(stderr, "shared scanner: %d ok, %d busy\n", atomic_load(&ok_scans), atomic_load(&busy_scans));
        atomic_fetch_add(&failures, 1);
    }
    /* every record is in the store */
    char *json = NULL;
    for (int id = 1; id <= want; id++) {
        if ((r = ping32dlp_workflow_record_json(workflow, id, &json)) != PING32DLP_OK) fail("record_json", r);
        ping32dlp_string_free(json);
        json = NULL;
    }
    ping32dlp_workflow_free(workflow);
    ping32dlp_policy_free(policy);
    ping32dlp_engine_free(engine);
    free(mail);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    printf("test_threads: saved engine (%zu detectors), %d threads x %d scans, %d recorded, shared scanner %d ok / %d busy, %d failures\n",
           original_detectors, THREADS, ROUNDS, atomic_load(&recorded), atomic_load(&ok_scans), atomic_load(&busy_scans),
           atomic_load(&failures));
    return atomic_load(&failures) == 0 ? 0 : 1;
}
