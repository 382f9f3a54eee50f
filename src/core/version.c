/* src/core/version.c: qg_version (include/qgate/version.h). */
#include <qgate/version.h>

const char *qg_version(void)
{
    return QG_VERSION_STRING;
}
