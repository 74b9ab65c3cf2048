/*
 * fuzz_smtpd_proto.c - libFuzzer target: random bytes into the SMTP server
 * state machine (stages/smtpd_proto.c, smtpd_data.c, smtpd_check.c).
 *
 * Build and run (configure with CC=clang, sanitizers recommended):
 *   /work/main/configure CC=clang --disable-jemalloc \
 *       --enable-sanitizers=address,undefined && make libsluice.a
 *   make fuzz-smtpd && ./t/fuzz_smtpd_proto -max_total_time=60
 *
 * The first input byte picks the chunk size the rest is fed in, so the
 * fuzzer also explores splits of lines, dots and BDAT chunks across reads.
 * Every event is honoured as the I/O layer would: submissions are answered
 * (alternately 250 and 451), STARTTLS "completes", sleeps end at once.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/msg.h"
#include "engine/str.h"
#include "queue/message.h"
#include "stages/smtpd.h"
#include "stages/smtpd_proto.h"

static const char *fuzz_get(void *ctx, const char *name)
{
    static const char *const kv[][2] = {
	{"myhostname", "mx.fuzz"},
	{"mydestination", "mx.fuzz, localhost"},
	{"mynetworks", "10.0.0.0/8"},
	{"relay_domains", "relay.fuzz"},
	{"local_recipient_maps", "inline:{ alice=1, bob=1 }"},
	{"smtpd_recipient_restrictions", "check_recipient_access inline:{ x@mx.fuzz=REJECT }"},
	{"smtpd_error_sleep_time", "1s"},
	{"smtpd_recipient_limit", "20"},
	{"message_size_limit", "4000"},
	{"line_length_limit", "600"},
    };

    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
	if (strcmp(kv[i][0], name) == 0)
	    return kv[i][1];
    return NULL;
}

static void fuzz_sink(enum msg_level level, const char *service, const char *text)
{
}

static SMTPD_CONFIG *fuzz_cfg;

static void fuzz_pump(SMTPD_PROTO *p, int *nsubmit)
{
    for (int guard = 0; guard < 1000; guard++) {
	str_reset(smtpd_proto_output(p));
	switch (smtpd_proto_event(p)) {
	case SMTPD_EV_SUBMIT:
	    message_free(smtpd_proto_take_message(p));
	    if ((*nsubmit)++ % 2)
		smtpd_proto_submit_done(p, 451, "4.3.0 Error: queue file write error");
	    else
		smtpd_proto_submit_done(p, 250, "FUZZID");
	    break;
	case SMTPD_EV_STARTTLS:
	    smtpd_proto_tls_done(p, "TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits)");
	    break;
	case SMTPD_EV_FLUSH:
	case SMTPD_EV_SLEEP:
	    smtpd_proto_resume(p);
	    break;
	default:
	    return;
	}
    }
}

int     LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    SMTPD_PEER peer = {.name = "unknown",.addr = "192.0.2.1",.port = 1,.local_addr = "192.0.2.2"};
    SMTPD_PROTO *p;
    size_t  step, off = 1;
    int     nsubmit = 0;

    if (fuzz_cfg == NULL) {
	STR     err = STR_INIT;

	msg_sink_set(fuzz_sink);
	if ((fuzz_cfg = smtpd_config_build(fuzz_get, NULL, &err)) == NULL)
	    abort();
    }
    if (size == 0)
	return 0;
    step = (size_t) data[0] + 1;
    p = smtpd_proto_new(fuzz_cfg, &peer, NULL);
    smtpd_proto_greet(p, NULL, 0);
    fuzz_pump(p, &nsubmit);
    while (off < size && smtpd_proto_event(p) != SMTPD_EV_CLOSE) {
	size_t  n = size - off < step ? size - off : step;

	smtpd_proto_input(p, (const char *) data + off, n);
	fuzz_pump(p, &nsubmit);
	off += n;
    }
    smtpd_proto_eof(p);
    smtpd_proto_free(p);
    return 0;
}
