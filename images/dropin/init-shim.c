/* pyinit's --init-path shim.
 *
 * `podman run --init --init-path=FILE` mounts one file into the container and
 * runs it as PID 1 with `-- CMD...`. pyinit's drop-in is a directory (Python
 * must stay PID 1 and unpack nothing at start, which rules out one file), so
 * this static shim is that one file: it replaces itself with the drop-in at
 * /opt/pyinit (mounted or copied there), keeping PID 1 and every argument.
 * It touches no signal state: the exec takes microseconds and pyinit's first
 * line blocks every signal.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PYINIT "/opt/pyinit/pyinit"

int main(int argc, char **argv) {
    (void)argc;
    argv[0] = PYINIT;
    execv(PYINIT, argv);
    dprintf(2, "pyinit-init: cannot run " PYINIT ": %s (mount or copy the drop-in "
               "directory at /opt/pyinit)\n", strerror(errno));
    return 127;
}
