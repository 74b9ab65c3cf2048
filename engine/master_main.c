/*
 * master_main.c - the `master` program: the supervisor, or with -E the
 * engine process it runs.
 *
 * Usage: master [-c config_dir] [-d] [-E]
 *   -d  stay in the foreground (postfix start-fg); log to stdout if
 *       maillog_file is /dev/stdout
 *   -E  run the engine itself (the supervisor starts it this way)
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/config.h"
#include "engine/engine.h"
#include "engine/master.h"
#include "engine/msg.h"
#include "engine/str.h"

int main(int argc, char **argv)
{
    const char *config_dir = NULL;
    int foreground = 0, engine = 0, ch;
    STR why = STR_INIT;

    msg_progname_set("master");
    while ((ch = getopt(argc, argv, "c:dEv")) > 0) {
	switch (ch) {
	case 'c':
	    config_dir = optarg;
	    break;
	case 'd':
	    foreground = 1;
	    break;
	case 'E':
	    engine = 1;
	    break;
	case 'v':
	    msg_verbose++;
	    break;
	default:
	    msg_fatal("usage: master [-c config_dir] [-d] [-E]");
	}
    }
    config_dir = config_dir_select(config_dir);
    if (engine)
	return engine_main(config_dir);
    if (engine_config_load(config_dir, &why) < 0)
	msg_fatal("%s", STR_DATA(&why));
    str_release(&why);
    return master_main(config_dir, !foreground);
}
