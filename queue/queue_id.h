/*
 * queue_id.h - queue IDs that look like Postfix's (uppercase hex).
 *
 * An ID is the wall clock in microseconds, strictly increasing within the
 * process (never two alike even when issued faster than the clock ticks), so
 * IDs are unique across restarts as long as the clock does not step back
 * further than the engine was down. Recovery calls queue_id_seen() with
 * every ID it replays, so a restart never issues an ID already queued.
 * Thread safe and lock free.
 */
#ifndef SLUICE_QUEUE_ID_H
#define SLUICE_QUEUE_ID_H

#include <stdint.h>
#include <stdbool.h>

#include "queue/message.h"

void     queue_id_next(char buf[QUEUE_ID_MAX]);
uint64_t queue_id_value(const char *id);	/* 0 if not an ID we issue */
void     queue_id_seen(const char *id);
bool     queue_id_valid(const char *id);	/* syntax check for CLI input */

#endif
