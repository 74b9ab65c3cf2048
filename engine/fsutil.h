/*
 * fsutil.h - small file system helpers shared by the engine and the agents.
 * Thread safe (no shared state).
 */
#ifndef SLUICE_FSUTIL_H
#define SLUICE_FSUTIL_H

#include <sys/types.h>

/* mkdir -p: creates missing parents with mode; 0, or -1 with errno set. */
int fs_mkdirs(const char *path, mode_t mode);

#endif
