/*
 * qmqpd.h - the QMQP server (Postfix's qmqpd(8)) as an engine component.
 *
 * One listener per master.cf "inet" service whose command is qmqpd (the
 * stock "628 inet n - n - - qmqpd"); -o overrides apply per service. The
 * protocol is http://cr.yp.to/proto/qmqp.html: the client sends one
 * netstring holding the message, the envelope sender and the recipients,
 * each a netstring; the server answers one netstring, "K..." (queued),
 * "Z..." (temporary failure) or "D..." (permanent failure), and closes.
 *
 * As Postfix:
 *   - qmqpd_authorized_clients (an address match list, default empty =
 *     nobody) decides who may talk at all; others get "DError: host[addr]
 *     is not authorized to use this service";
 *   - the message netstring is bounded by message_size_limit, the sender
 *     and each recipient by line_length_limit, all before any allocation
 *     (data grows as it arrives, never as a client declares it); a bad
 *     netstring gets "Dnetstring format error while receiving ...", a too
 *     long one "Dnetstring length exceeds storage limit while receiving ...";
 *   - qmqpd_timeout bounds every read and write, qmqpd_error_delay comes
 *     before every negative reply;
 *   - content lines end in LF (CRLF is accepted) and become canonical
 *     CRLF; a leading "From " line becomes "X-Mailbox-Line:".
 * The message goes to the cleanup stage (receive_submit) with protocol
 * "QMQP"; "K" is sent only after the journal sync.
 *
 * Threading: an acceptor thread per service and one thread per connection,
 * at most maxproc (or default_process_limit) at once; further clients wait
 * in the listen backlog. start/stop from the engine's main thread; stop
 * waits for every connection (a connection waiting for the journal gets
 * its reply first).
 * Diagnostics (service "qmqpd"): "connect from host[addr]",
 * "ID: client=host[addr]", "ID: host[addr]: reason while where",
 * "disconnect from host[addr]".
 */
#ifndef SLUICE_QMQPD_H
#define SLUICE_QMQPD_H

#include "engine/engine.h"

extern const ENGINE_COMPONENT qmqpd_component;

#endif
