/*
 * A vendor agent on the C ABI against a real fleet server (run by scripts/fleet-test.sh, which
 * starts the server and makes the token):
 *
 *   agent SERVER_URL CA_FILE TOKEN STATE_DIR REPO_ROOT
 *
 * enrols as `c-agent`, opens the agent workflow, judges and records three messages (one held
 * by the server's pushed policy), waits for the pushed policy (ping32dlp_agent_policy_update)
 * and prints the record ids; the script then checks that the server has them under c-agent.
 */
#define _DEFAULT_SOURCE 1
#include <ping32dlp.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures = 0;
#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            failures++;                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s (%s)\n", __FILE__, __LINE__, \
                    #cond, ping32dlp_last_error());                              \
        }                                                                        \
    } while (0)
#define OK(call) CHECK((call) == PING32DLP_OK)

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s SERVER_URL CA_FILE TOKEN STATE_DIR REPO_ROOT\n", argv[0]);
        return 2;
    }
    const char *server = argv[1], *ca = argv[2], *token = argv[3], *dir = argv[4];
    char *name = NULL;
    OK(ping32dlp_agent_enrol(server, ca, token, "c-agent", dir, &name));
    CHECK(name != NULL && strcmp(name, "c-agent") == 0);
    ping32dlp_string_free(name);
    /* the token is spent */
    CHECK(ping32dlp_agent_enrol(server, ca, token, "c-agent-2", "/tmp/ping32dlp-c-agent-2", NULL) == PING32DLP_ERR_FORBIDDEN);

    ping32dlp_engine *e = NULL;
    OK(ping32dlp_engine_new_builtin(&e));
    /* the policy the server pushes (the fleet test uploaded one), taken within 30 s */
    ping32dlp_workflow *wf = NULL;
    OK(ping32dlp_agent_open(server, ca, dir, NULL, &wf));
    ping32dlp_policy *policy = NULL;
    int64_t version = 0;
    for (int i = 0; i < 300 && policy == NULL; i++) {
        OK(ping32dlp_agent_policy_update(dir, e, &policy, &version, NULL));
        if (!policy) usleep(100000);
    }
    CHECK(policy != NULL && version >= 1);
    if (!policy) return 1;

    ping32dlp_scanner *s = NULL;
    OK(ping32dlp_scanner_new(e, &s));
    ping32dlp_context *c = NULL;
    OK(ping32dlp_context_new(&c));
    OK(ping32dlp_context_set(c, PING32DLP_CTX_CHANNEL, "api"));
    OK(ping32dlp_context_set(c, PING32DLP_CTX_USER, "vendor-user"));
    static const char *mails[] = {
        "From: a@example.co.jp\r\nTo: b@dlp.test\r\nSubject: c agent clean\r\n\r\nhello\r\n",
        "From: a@example.co.jp\r\nTo: b@dlp.test\r\nSubject: c agent mynumber\r\n\r\n個人番号 1234 5678 9018\r\n",
        "From: a@example.co.jp\r\nTo: b@dlp.test\r\nSubject: c agent held\r\n\r\n社外秘の資料です\r\n",
    };
    for (int i = 0; i < 3; i++) {
        const ping32dlp_report *r = NULL;
        OK(ping32dlp_scanner_scan_message(s, (const uint8_t *)mails[i], strlen(mails[i]), c, 0, &r));
        ping32dlp_decision *d = NULL;
        OK(ping32dlp_workflow_record(wf, policy, r, c, (const uint8_t *)mails[i], strlen(mails[i]), 0, &d));
        ping32dlp_action a = ping32dlp_verdict_action(ping32dlp_decision_verdict(d));
        printf("RECORD %lld %s\n", (long long)ping32dlp_decision_record_id(d), ping32dlp_action_str(a));
        if (i == 1) CHECK(a == PING32DLP_ACTION_BLOCK);
        if (i == 2) CHECK(a == PING32DLP_ACTION_HOLD);
        ping32dlp_decision_free(d);
    }
    /* give the forwarder time to upload before the workflow (and its thread) goes */
    sleep(3);
    ping32dlp_context_free(c);
    ping32dlp_scanner_free(s);
    ping32dlp_policy_free(policy);
    ping32dlp_workflow_free(wf);
    ping32dlp_engine_free(e);
    printf("c-agent: %d failed\n", failures);
    return failures == 0 ? 0 : 1;
}
