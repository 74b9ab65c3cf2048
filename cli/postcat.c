/*
 * postcat.c - postcat(1): show one queued message.
 *
 * Usage: postcat [-c config_dir] [-b] [-e] [-h] [-v] -q queue_id...
 *   -e	envelope: "*** ENVELOPE RECORDS queue/ID ***", sender, client
 *	attributes, recipients (done_recipient for finished ones), then the
 *	section markers Postfix prints (MESSAGE CONTENTS, HEADER EXTRACTED,
 *	MESSAGE FILE END)
 *   -h	the header, -b the body (from the empty line on)
 * Without -b, -e or -h: all three. Content is printed with LF line ends.
 * Sluice keeps no queue files, so file arguments without -q are refused.
 *
 * Running engine: the control socket (queue-cat, content in 512 KiB
 * pieces). Stopped engine: the journal, read-only.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/queue_cli.h"
#include "engine/mem.h"
#include "engine/msg.h"
#include "queue/queue_ctl.h"
#include "queue/queue_id.h"

#define PC_ENV		(1<<0)
#define PC_HEADER	(1<<1)
#define PC_BODY		(1<<2)

typedef struct PC_MSG {
    const char *want;
    bool    found;
    char    queue[32];
    STR     env;
    STR     content;
} PC_MSG;

static void postcat_offline_one(void *ctx, const QUEUE_VIEW_MSG *m)
{
    PC_MSG *pc = ctx;

    if (pc->found || strcmp(m->msg->queue_id, pc->want) != 0)
	return;
    pc->found = true;
    snprintf(pc->queue, sizeof(pc->queue), "%s", queue_view_queue_name(m->queue));
    queue_view_envelope(&pc->env, m);
    if (m->msg->content)
	str_append(&pc->content, m->msg->content->data, m->msg->content->len);
}

static void postcat_online(PC_MSG *pc)
{
    STR     out = STR_INIT, off = STR_INIT;
    char   *argv[5] = {"queue-cat", (char *) pc->want, "env", NULL, NULL};
    size_t  size, got = 0;
    const char *nl;

    if (queue_cli_call(3, argv, &out) != 0)
	msg_fatal("%s", STR_DATA(&out));
    if (sscanf(STR_DATA(&out), "%31s %zu", pc->queue, &size) != 2
	|| (nl = strchr(STR_DATA(&out), '\n')) == NULL)
	msg_fatal("malformed reply from the mail system");
    pc->found = true;
    str_puts(&pc->env, nl + 1);
    while (got < size) {
	size_t  before = STR_LEN(&pc->content);

	str_reset(&off);
	str_printf(&off, "%zu", got);
	argv[2] = "data";
	argv[3] = off.data;
	if (queue_cli_call(4, argv, &out) != 0)
	    msg_fatal("%s", STR_DATA(&out));
	if ((nl = memchr(STR_DATA(&out), '\n', STR_LEN(&out))) == NULL)
	    msg_fatal("malformed reply from the mail system");
	nl++;
	str_append(&pc->content, nl, STR_LEN(&out) - (size_t) (nl - STR_DATA(&out)));
	if (STR_LEN(&pc->content) == before)
	    break;				/* gone meanwhile */
	got = STR_LEN(&pc->content);
    }
    str_release(&out);
    str_release(&off);
}

/* Canonical CRLF content out as LF lines. */
static void postcat_text(const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
	if (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
	    continue;
	putchar(data[i]);
    }
    if (len && data[len - 1] != '\n')
	putchar('\n');
}

static void postcat_show(PC_MSG *pc, int flags)
{
    size_t  len = STR_LEN(&pc->content);
    const char *data = STR_DATA(&pc->content);
    size_t  hdr_end = queue_view_body_offset(data, len);
    size_t  body = hdr_end;

    /* The empty line separating header and body belongs to the body. */
    if (hdr_end >= 2 && hdr_end < len + 1 && hdr_end != len)
	hdr_end -= 2;
    else if (hdr_end == len && len >= 4 && memcmp(data + len - 4, "\r\n\r\n", 4) == 0)
	hdr_end -= 2;
    if (body > hdr_end)
	body = hdr_end;
    if (flags & PC_ENV) {
	printf("*** ENVELOPE RECORDS %s/%s ***\n", pc->queue, pc->want);
	fputs(STR_DATA(&pc->env), stdout);
	printf("*** MESSAGE CONTENTS %s/%s ***\n", pc->queue, pc->want);
    }
    if (flags & PC_HEADER)
	postcat_text(data, hdr_end);
    if (flags & PC_BODY)
	postcat_text(data + body, len - body);
    if (flags & PC_ENV) {
	printf("*** HEADER EXTRACTED %s/%s ***\n", pc->queue, pc->want);
	printf("*** MESSAGE FILE END %s/%s ***\n", pc->queue, pc->want);
    }
}

int main(int argc, char **argv)
{
    const char *config_dir = NULL;
    int     ch, flags = 0, rc = 0;
    bool    search = false;

    msg_progname_set("postcat");
    while ((ch = getopt(argc, argv, "bc:ehqv")) > 0) {
	switch (ch) {
	case 'b':
	    flags |= PC_BODY;
	    break;
	case 'c':
	    config_dir = optarg;
	    break;
	case 'e':
	    flags |= PC_ENV;
	    break;
	case 'h':
	    flags |= PC_HEADER;
	    break;
	case 'q':
	    search = true;
	    break;
	case 'v':
	    msg_verbose++;
	    break;
	default:
	    msg_fatal("usage: postcat [-b (body text)] [-c config_dir] [-e (envelope records)] "
		      "[-h (header text)] [-v] -q queue_id...");
	}
    }
    if (!search || optind == argc)
	msg_fatal("Sluice keeps no queue files: use postcat -q queue_id");
    if (flags == 0)
	flags = PC_ENV | PC_HEADER | PC_BODY;
    for (int i = optind; i < argc; i++)
	if (!queue_id_valid(argv[i]))
	    msg_fatal("bad mail queue ID: %s", argv[i]);
    queue_cli_config(config_dir);
    for (int i = optind; i < argc; i++) {
	PC_MSG  pc;

	memset(&pc, 0, sizeof(pc));
	pc.want = argv[i];
	if (queue_cli_online()) {
	    postcat_online(&pc);
	} else {
	    JOURNAL *j = queue_cli_journal_open(false);

	    queue_cli_recover(j, postcat_offline_one, &pc);
	    if (j)
		journal_close(j);
	}
	if (!pc.found)
	    msg_fatal("open queue file %s: No such file or directory", argv[i]);
	postcat_show(&pc, flags);
	str_release(&pc.env);
	str_release(&pc.content);
    }
    return rc | (fflush(stdout) != 0);
}
