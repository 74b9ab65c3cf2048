/*
 * cleanup_tool.c - test helper: runs cleanup_message() and
 * rewrite_message() on one message read from stdin and prints the result,
 * so that scripts can check it with their own parsers (t/cleanup_email.py).
 *
 *   cleanup_tool [-l] [-t] [-f sender] [-q queue_id] [rcpt ...] < message
 *
 * -l treats the client as local (headers rewritten and added), -t takes
 * recipients from the headers. Input lines may end in LF or CRLF; the
 * content printed is canonical (CRLF). Then, on stderr:
 *   result=N reply=TEXT
 *   rcpt=ADDRESS transport=T nexthop=H    (one per recipient)
 * Settings: myhostname mail.example.com, myorigin/mydomain example.com,
 * mydestination example.com, mail_name Sluice.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/mem.h"
#include "engine/str.h"
#include "queue/message.h"
#include "stages/cleanup.h"
#include "stages/rewrite.h"

int     main(int argc, char **argv)
{
    REWRITE_CONFIG rcfg;
    CLEANUP_CONFIG ccfg;
    CLEANUP_INFO info;
    REWRITE *rw;
    CLEANUP_CTX *ctx;
    MESSAGE *m = message_new();
    STR     in = STR_INIT, content = STR_INIT, reply = STR_INIT, err = STR_INIT;
    char    buf[65536];
    size_t  n;
    int     ch, rc;

    memset(&info, 0, sizeof(info));
    info.uid = -1;
    strcpy(m->queue_id, "4TESTQID1");
    m->client_name = mem_strdup("client.test");
    m->client_addr = mem_strdup("192.0.2.10");
    m->helo = mem_strdup("helo.test");
    m->protocol = mem_strdup("ESMTP");
    while ((ch = getopt(argc, argv, "ltf:q:")) != -1) {
	switch (ch) {
	case 'l':
	    info.flags |= CLEANUP_FLAG_LOCAL_HEADERS;
	    break;
	case 't':
	    info.flags |= CLEANUP_FLAG_EXTRACT;
	    break;
	case 'f':
	    mem_free(m->sender);
	    m->sender = mem_strdup(optarg);
	    break;
	case 'q':
	    snprintf(m->queue_id, sizeof(m->queue_id), "%s", optarg);
	    break;
	default:
	    fprintf(stderr, "usage: cleanup_tool [-l] [-t] [-f sender] [-q id] [rcpt ...]\n");
	    return 2;
	}
    }
    for (int i = optind; i < argc; i++)
	message_add_rcpt(m, argv[i], NULL);
    while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
	str_append(&in, buf, n);
    for (size_t i = 0; i < STR_LEN(&in); i++) {
	if (in.data[i] == '\n' && (i == 0 || in.data[i - 1] != '\r'))
	    str_putc(&content, '\r');
	str_putc(&content, in.data[i]);
    }
    m->content = blob_adopt(&content);

    rewrite_config_defaults(&rcfg);
    rcfg.myhostname = "mail.example.com";
    rcfg.mydomain = rcfg.myorigin = "example.com";
    rcfg.mydestination = "example.com";
    rcfg.local_transport = "local:mail.example.com";
    cleanup_config_defaults(&ccfg);
    ccfg.myhostname = "mail.example.com";
    ccfg.mail_name = "Sluice";
    if ((rw = rewrite_create(&rcfg, &err)) == NULL
	|| (ctx = cleanup_create(&ccfg, rw, &err)) == NULL) {
	fprintf(stderr, "cleanup_tool: %s\n", STR_DATA(&err));
	return 1;
    }
    rc = cleanup_message(ctx, m, &info, &reply);
    if (rc != CLEANUP_REJECT && rc != CLEANUP_DEFER) {
	fwrite(m->content->data, 1, m->content->len, stdout);
	(void) rewrite_message(rw, m, &reply);
    }
    fprintf(stderr, "result=%d reply=%s\n", rc, STR_DATA(&reply));
    for (size_t i = 0; i < m->nrcpt; i++)
	fprintf(stderr, "rcpt=%s transport=%s nexthop=%s\n", m->rcpt[i].address,
		m->rcpt[i].transport ? m->rcpt[i].transport : "",
		m->rcpt[i].nexthop ? m->rcpt[i].nexthop : "");
    message_free(m);
    cleanup_free(ctx);
    rewrite_free(rw);
    str_release(&in);
    str_release(&reply);
    str_release(&err);
    return 0;
}
