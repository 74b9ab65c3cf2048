/*
 * fsutil.c - small file system helpers (see fsutil.h).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "engine/fsutil.h"

int fs_mkdirs(const char *path, mode_t mode)
{
    char    buf[4096];
    size_t  n = (size_t) snprintf(buf, sizeof(buf), "%s", path);

    if (n >= sizeof(buf)) {
	errno = ENAMETOOLONG;
	return -1;
    }
    if (mkdir(buf, mode) == 0 || errno == EEXIST)
	return 0;
    if (errno != ENOENT)
	return -1;
    for (char *s = buf + 1; *s; s++) {
	if (*s != '/')
	    continue;
	*s = 0;
	if (mkdir(buf, mode) < 0 && errno != EEXIST) {
	    *s = '/';
	    return -1;
	}
	*s = '/';
    }
    return mkdir(buf, mode) == 0 || errno == EEXIST ? 0 : -1;
}
