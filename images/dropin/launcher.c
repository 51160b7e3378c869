/* The drop-in's /opt/pyinit/pyinit: CPython with pyinit as its program.
 *
 * Linked with the distribution's static libpython (the same code, built the
 * same way, as its /usr/bin/python3.11), so it starts like `python -I -S`:
 * no bootloader, no archive to open, no second interpreter. images/build.sh
 * links it, then points its ELF interpreter and rpath at /opt/pyinit/lib.
 *
 * It is `python -I -S -c "from pyinit.__main__ import main; ..."` without
 * the options in the process's argv, so PID 1's command line stays
 * `/opt/pyinit/pyinit -- CMD...` and sys.argv is argv itself:
 *
 * - isolated (-I): no PYTHON* variable of the image, no user site, no
 *   current directory on sys.path;
 * - no site (-S): nothing from a site-packages of the image;
 * - sys.path is exactly what pyinit._pth (next to this file) lists, relative
 *   to it: the bundle's own lib/python3.11, lib-dynload and site-packages.
 *   CPython's getpath takes that file as home and path; it does not look
 *   for a prefix elsewhere (an image's /usr/lib/python3.*) nor read
 *   sys.path from anywhere else.
 *
 * The program is scripts/pyinit-py's without its site handling (sys.path is
 * whole already, and site never runs): pyinit.__main__ blocks every signal
 * on its first line; the process is named pyinit by its executable's name.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static const wchar_t PROGRAM[] =
    L"import sys\n"
    L"from pyinit.__main__ import main\n"
    L"sys.exit(main())\n";

int main(int argc, char **argv) {
    PyConfig config;
    PyConfig_InitPythonConfig(&config);  /* Python's defaults, signal handling included */
    config.isolated = 1;
    config.site_import = 0;
    config.parse_argv = 0;  /* every argument is pyinit's */
    PyStatus status = PyConfig_SetBytesArgv(&config, argc, argv);
    if (!PyStatus_Exception(status))
        status = PyConfig_SetString(&config, &config.run_command, PROGRAM);
    if (!PyStatus_Exception(status))
        status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status))
        Py_ExitStatusException(status);
    return Py_RunMain();
}
