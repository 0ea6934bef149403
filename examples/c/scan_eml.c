/*
 * scan_eml: inspect one .eml with libping32dlp and print the verdict.
 *
 *   cc scan_eml.c -o scan_eml $(pkg-config --cflags --libs ping32dlp)
 *   ./scan_eml mail.eml [policy.toml]
 *
 * Without a policy file the embedded policy is used: it is monitor-only, so its verdict is
 * "allow" and the "would:" line says what enforcing it would do. Exit status: 0 when the mail
 * may go, 1 when the verdict is hold or block, 2 on an error.
 */
#include <ping32dlp.h>

#include <stdio.h>
#include <stdlib.h>

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, got;
    unsigned char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            unsigned char *bigger = realloc(buf, cap *= 2);
            if (!bigger) { free(buf); buf = NULL; }
            buf = bigger;
        }
    }
    fclose(f);
    *len = n;
    return buf;
}

/* Prints a borrowed string (pointer and length; not NUL-terminated). */
#define STR(s) (int)(s).len, (s).data

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s mail.eml [policy.toml]\n", argv[0]);
        return 2;
    }
    size_t len = 0;
    unsigned char *mail = read_file(argv[1], &len);
    if (!mail) { perror(argv[1]); return 2; }

    int status = 2;
    ping32dlp_engine *engine = NULL;
    ping32dlp_scanner *scanner = NULL;
    ping32dlp_policy *policy = NULL;
    ping32dlp_verdict *verdict = NULL;
    ping32dlp_error *error = NULL;
    const ping32dlp_report *report = NULL;
    ping32dlp_result r;

    if ((r = ping32dlp_engine_new_builtin(&engine)) != PING32DLP_OK) goto fail;
    if (argc > 2) {
        /* checked against the engine: a detector name the engine lacks is an error, not a
         * rule that silently never matches */
        r = ping32dlp_policy_load_for_engine(argv[2], engine, &policy, &error);
        if (r != PING32DLP_OK) {
            ping32dlp_str where = ping32dlp_error_message(error);
            fprintf(stderr, "%.*s\n", STR(where));
            goto done;
        }
    } else if ((r = ping32dlp_policy_new_default(&policy)) != PING32DLP_OK) {
        goto fail;
    }
    if ((r = ping32dlp_scanner_new(engine, &scanner)) != PING32DLP_OK) goto fail;
    if ((r = ping32dlp_scanner_scan_message(scanner, mail, len, NULL, 0, &report)) != PING32DLP_OK)
        goto fail;
    if ((r = ping32dlp_policy_evaluate(policy, report, NULL, &verdict)) != PING32DLP_OK) goto fail;

    ping32dlp_str subject = ping32dlp_report_header(report, PING32DLP_HEADER_SUBJECT, 0);
    printf("subject: %.*s\n", STR(subject));
    for (size_t i = 0; i < ping32dlp_report_attachment_count(report); i++) {
        const ping32dlp_attachment *a = ping32dlp_report_attachment(report, i);
        ping32dlp_str name = ping32dlp_attachment_location(a);
        ping32dlp_str type = ping32dlp_attachment_true_type(a);
        printf("attachment: %.*s (%.*s, %llu bytes)\n", STR(name), STR(type),
               (unsigned long long)ping32dlp_attachment_size(a));
    }
    for (size_t i = 0; i < ping32dlp_report_finding_count(report); i++) {
        const ping32dlp_finding *f = ping32dlp_report_finding(report, i);
        ping32dlp_str det = ping32dlp_finding_detector(f);
        ping32dlp_str where = ping32dlp_finding_location(f);
        ping32dlp_str masked = ping32dlp_finding_value_masked(f);
        printf("finding: %.*s in %.*s: %.*s\n", STR(det), STR(where), STR(masked));
    }
    for (size_t i = 0; i < ping32dlp_report_unscannable_count(report); i++) {
        const ping32dlp_unscannable *u = ping32dlp_report_unscannable(report, i);
        ping32dlp_str where = ping32dlp_unscannable_location(u);
        ping32dlp_str why = ping32dlp_unscannable_reason(u);
        printf("unscannable: %.*s (%.*s)\n", STR(where), STR(why));
    }
    ping32dlp_action action = ping32dlp_verdict_action(verdict);
    ping32dlp_action would = ping32dlp_verdict_would_action(verdict);
    printf("verdict: %s (risk %u)\n", ping32dlp_action_str(action), ping32dlp_verdict_risk(verdict));
    if (would != action) /* monitor mode: what enforcing the policy would do */
        printf("would: %s (the matching rules are in monitor mode)\n", ping32dlp_action_str(would));
    for (size_t i = 0; i < ping32dlp_verdict_rule_count(verdict); i++) {
        const ping32dlp_rule_match *m = ping32dlp_verdict_rule(verdict, i);
        ping32dlp_str id = ping32dlp_rule_match_id(m);
        printf("rule: %.*s -> %s%s\n", STR(id), ping32dlp_action_str(ping32dlp_rule_match_action(m)),
               ping32dlp_rule_match_is_monitor(m) ? " (monitor)" : "");
        for (size_t j = 0; j < ping32dlp_rule_match_reason_count(m); j++) {
            ping32dlp_str why = ping32dlp_rule_match_reason(m, j);
            printf("  because %.*s\n", STR(why));
        }
    }
    if (action >= PING32DLP_ACTION_HOLD) {
        ping32dlp_str msg = ping32dlp_verdict_message(verdict, "en");
        printf("message: %.*s\n", STR(msg));
    }
    status = action >= PING32DLP_ACTION_HOLD ? 1 : 0;
    goto done;

fail:
    fprintf(stderr, "%s: %s\n", ping32dlp_result_str(r), ping32dlp_last_error());
done:
    ping32dlp_verdict_free(verdict);
    ping32dlp_error_free(error);
    ping32dlp_scanner_free(scanner); /* also frees the report */
    ping32dlp_policy_free(policy);
    ping32dlp_engine_free(engine);
    free(mail);
    return status;
}
