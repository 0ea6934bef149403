#include <ping32dlp.h> /* verdict: the shortest useful agent (README, "The C library") */
#include <stdio.h>

int main(int argc, char **argv) {
    static unsigned char mail[4 << 20];
    FILE *f = argc > 1 ? fopen(argv[1], "rb") : NULL;
    if (!f) { fprintf(stderr, "usage: %s mail.eml\n", argv[0]); return 2; }
    size_t len = fread(mail, 1, sizeof mail, f);
    fclose(f);
    ping32dlp_engine *engine = NULL;
    ping32dlp_scanner *scanner = NULL;
    ping32dlp_policy *policy = NULL; /* the built-in policy is monitor-only */
    ping32dlp_verdict *verdict = NULL;
    const ping32dlp_report *report = NULL; /* the scanner's, until its next scan */
    if (ping32dlp_engine_new_builtin(&engine) || ping32dlp_scanner_new(engine, &scanner) ||
        ping32dlp_policy_new_default(&policy) ||
        ping32dlp_scanner_scan_message(scanner, mail, len, NULL, 0, &report) ||
        ping32dlp_policy_evaluate(policy, report, NULL, &verdict)) {
        fprintf(stderr, "error: %s\n", ping32dlp_last_error());
        return 2;
    }
    printf("%zu findings: %s now, %s when enforced (risk %u)\n", ping32dlp_report_finding_count(report),
           ping32dlp_action_str(ping32dlp_verdict_action(verdict)),
           ping32dlp_action_str(ping32dlp_verdict_would_action(verdict)), ping32dlp_verdict_risk(verdict));
    ping32dlp_verdict_free(verdict), ping32dlp_policy_free(policy); /* the report goes with its scanner */
    ping32dlp_scanner_free(scanner), ping32dlp_engine_free(engine);
    return 0;
}
