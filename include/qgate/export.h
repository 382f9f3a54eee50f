/* qgate/export.h: QG_API marks the functions libqgate exports.
 *
 * The library is compiled with -fvisibility=hidden and QG_BUILDING_LIBRARY
 * defined, so only functions declared with QG_API in the installed headers
 * (qg_*) are visible in libqgate.so; internal qg__ functions stay hidden.
 * For programs that use the library QG_API expands to nothing.
 */
#ifndef QGATE_EXPORT_H
#define QGATE_EXPORT_H

#if defined(QG_BUILDING_LIBRARY) && defined(__GNUC__) && __GNUC__ >= 4
#define QG_API __attribute__((visibility("default")))
#else
#define QG_API
#endif

#endif
