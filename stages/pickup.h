/*
 * pickup.h - local mail pickup (Postfix's pickup(8)) as an engine component.
 *
 * Runs when master.cf has a service whose command is "pickup" (the stock
 * "pickup unix n - y 60 1 pickup"); its wakeup column is the period of the
 * full maildrop scan (default 60 s). At start it creates
 * $queue_directory/maildrop if missing:
 *   - mode 1730, group $setgid_group, when $command_directory/postdrop is
 *     installed setgid to that group (a root install, as Postfix);
 *   - else mode 1733 (sticky, writable by everyone, not listable, like
 *     /tmp): the embedded default, where no install step could chgrp.
 * An existing directory is left as the operator made it.
 *
 * One thread watches the directory with inotify (a file renamed into it by
 * postdrop wakes it at once) and scans it every wakeup period and at start,
 * so mail dropped while the engine was stopped goes out when it starts.
 * Each file (stages/maildrop.h) becomes a MESSAGE with protocol "LOCAL",
 * the submitting user being the file's owner (never a field of the file),
 * handed to the cleanup stage with receive_submit_info() (uid for the
 * Received: header, sendmail -F full name, sendmail -t extraction). At most
 * PICKUP_INFLIGHT files are in the cleanup stage at once.
 * The cleanup outcome decides the file's fate, as in Postfix: 250 -> the
 * file is removed; 4xx -> kept and retried at the next periodic scan;
 * 5xx -> removed, with a warning that names the reason. A file that is not
 * a regular file, has several links, or is malformed is moved to
 * $queue_directory/corrupt with a warning; it never stops pickup.
 *
 * Threading: start/stop from the engine's main thread; the pickup thread
 * owns everything else. Completions from the cleanup stage and the journal
 * reach it through a mutex-protected list and an eventfd.
 * Diagnostics (service "pickup"): "ID: uid=N from=<sender>",
 * "warning: maildrop/NAME: uid=N: malformed file: REASON; moved to corrupt/".
 */
#ifndef SLUICE_PICKUP_H
#define SLUICE_PICKUP_H

#include "engine/engine.h"

#define PICKUP_INFLIGHT	64

extern const ENGINE_COMPONENT pickup_component;

#endif
