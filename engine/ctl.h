/*
 * ctl.h - the engine's control socket and its client.
 *
 * A UNIX stream socket, $queue_directory/private/control, in a directory only
 * the engine's user can enter (mode 0700). One request per connection:
 *   request:  u32 length (big endian), then argv as NUL-terminated strings
 *   response: u32 length, then one status byte ('0' ok, '1' error) and text
 * Requests are authorised by the peer's credentials (SO_PEERCRED): root, the
 * engine's own uid, or mail_owner's uid. Frames over 1 MiB are refused.
 *
 * Threading: handlers run on the control thread, one request at a time; a
 * handler that needs another stage's state posts to it and waits.
 * Diagnostics: bad frames and refused peers are logged with msg_warn.
 */
#ifndef SLUICE_CTL_H
#define SLUICE_CTL_H

#include <sys/types.h>

#include "engine/str.h"

#define CTL_SOCKET_NAME	"private/control"
#define CTL_MAX_FRAME	(1u << 20)

/* Returns 0 for success, non-zero for an error; writes the reply to out. */
typedef int (*ctl_handler_fn)(int argc, char **argv, STR *out, void *ctx);

void ctl_register(const char *command, ctl_handler_fn fn, void *ctx);
/* Binds the socket under queue_dir and starts the control thread. */
void ctl_start(const char *queue_dir, uid_t extra_uid);
void ctl_stop(void);

/* Client: returns the status (0/1) or -1 if the engine cannot be reached
 * (the reason is in out). */
int  ctl_call(const char *queue_dir, int argc, char **argv, STR *out);
void ctl_socket_path(const char *queue_dir, STR *path);

#endif
