/*
 * bounce_tool.c - test helper: builds the notices for one original message
 * (read from stdin) with bounce_build() and prints them, so that scripts
 * check them with their own MIME parser (t/bounce_email.py).
 *
 *   bounce_tool [-k failure|delay|success|verify] [-f sender] [-R full|hdrs]
 *               [-E envid] [-l bounce_size_limit] [-c notify_classes] [-u]
 *               rcpt ... < message
 *
 * Each rcpt is "address|notify|dsn|reason|orcpt" (trailing fields may be
 * left out; notify is a comma list of NEVER, SUCCESS, FAILURE, DELAY; -u
 * marks the original SMTPUTF8). Input lines may end in LF or CRLF. Output,
 * per notice: "NOTICE <what>|<sender>|<recipient>|<length>\n", then the
 * content (CRLF lines). Settings: myhostname mail.example.com, myorigin
 * example.com, delay_warning_time 4h, maximal_queue_lifetime 5d.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine/mem.h"
#include "engine/str.h"
#include "queue/message.h"
#include "stages/bounce.h"

static char *field(char **p)
{
    char   *s = *p, *bar;

    if (s == NULL)
	return NULL;
    if ((bar = strchr(s, '|')) != NULL) {
	*bar = 0;
	*p = bar + 1;
    } else
	*p = NULL;
    return s;
}

static int notify_bits(const char *s)
{
    int     bits = 0;
    char   *copy = mem_strdup(s), *save = NULL;

    for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
	if (strcasecmp(w, "NEVER") == 0)
	    bits |= DSN_NOTIFY_NEVER;
	else if (strcasecmp(w, "SUCCESS") == 0)
	    bits |= DSN_NOTIFY_SUCCESS;
	else if (strcasecmp(w, "FAILURE") == 0)
	    bits |= DSN_NOTIFY_FAILURE;
	else if (strcasecmp(w, "DELAY") == 0)
	    bits |= DSN_NOTIFY_DELAY;
    }
    mem_free(copy);
    return bits;
}

int     main(int argc, char **argv)
{
    BOUNCE_CONFIG cfg;
    BOUNCE_NOTICE out[BOUNCE_MAX_NOTICES];
    BOUNCE_RCPT *rc;
    MESSAGE *m = message_new();
    STR     in = STR_INIT, content = STR_INIT;
    enum bounce_kind kind = BOUNCE_KIND_FAILURE;
    char    buf[65536];
    size_t  n, nr, count;
    int     ch;

    bounce_config_defaults(&cfg);
    cfg.myhostname = "mail.example.com";
    cfg.myorigin = "example.com";
    cfg.delay_warning_time_s = 4 * 3600;
    strcpy(m->queue_id, "4ABCDEF01");
    m->arrival_us = 1700000000LL * 1000000;
    while ((ch = getopt(argc, argv, "k:f:R:E:l:c:u")) != -1) {
	switch (ch) {
	case 'k':
	    kind = strcmp(optarg, "delay") == 0 ? BOUNCE_KIND_DELAY
		: strcmp(optarg, "success") == 0 ? BOUNCE_KIND_SUCCESS
		: strcmp(optarg, "verify") == 0 ? BOUNCE_KIND_VERIFY : BOUNCE_KIND_FAILURE;
	    break;
	case 'f':
	    mem_free(m->sender);
	    m->sender = mem_strdup(optarg);
	    break;
	case 'R':
	    m->dsn_ret = strcasecmp(optarg, "hdrs") == 0 ? DSN_RET_HDRS : DSN_RET_FULL;
	    break;
	case 'E':
	    m->dsn_envid = mem_strdup(optarg);
	    break;
	case 'l':
	    cfg.size_limit = (size_t) strtoul(optarg, NULL, 10);
	    break;
	case 'c':
	    cfg.notify_classes = bounce_classes_parse(optarg);
	    break;
	case 'u':
	    m->smtputf8 = true;
	    break;
	default:
	    fprintf(stderr, "usage: bounce_tool [-k kind] [-f sender] [-R full|hdrs] "
		    "[-E envid] [-l limit] [-c classes] [-u] rcpt...\n");
	    return 2;
	}
    }
    nr = (size_t) (argc - optind);
    rc = mem_calloc(nr ? nr : 1, sizeof(*rc));
    for (size_t i = 0; i < nr; i++) {
	char   *p = argv[optind + (int) i];
	char   *addr = field(&p), *notify = field(&p), *dsn = field(&p);
	char   *reason = field(&p), *orcpt = field(&p);
	RCPT   *r = message_add_rcpt(m, addr, addr);

	r->transport = mem_strdup("smtp");
	r->dsn_notify = notify ? notify_bits(notify) : 0;
	if (orcpt && *orcpt)
	    r->dsn_orcpt = mem_strdup(orcpt);
	rc[i].index = i;
	rc[i].dsn = dsn;
	rc[i].reason = reason;
	if (kind == BOUNCE_KIND_VERIFY && dsn && dsn[0] != '2')
	    rc[i].action = "undeliverable";
    }
    while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
	str_append(&in, buf, n);
    for (size_t i = 0; i < STR_LEN(&in); i++) {
	if (in.data[i] == '\n' && (i == 0 || in.data[i - 1] != '\r'))
	    str_putc(&content, '\r');
	str_putc(&content, in.data[i]);
    }
    m->content = blob_adopt(&content);
    count = bounce_build(&cfg, m, kind, rc, nr, 1700003600LL * 1000000, out);
    for (size_t i = 0; i < count; i++) {
	MESSAGE *b = out[i].msg;

	printf("NOTICE %s|%s|%s|%zu\n", out[i].what, b->sender, b->rcpt[0].address,
	       b->content->len);
	fwrite(b->content->data, 1, b->content->len, stdout);
	message_free(b);
    }
    str_release(&in);
    mem_free(rc);
    message_free(m);
    return 0;
}
