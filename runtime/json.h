/* json — the one JSON string writer of the reports, the launcher and the
 * timeline. */
#ifndef SP_JSON_H
#define SP_JSON_H

#include <stdio.h>

/* S as a JSON string, escaped; NULL as null. */
void sp_json_str(FILE *f, const char *s);

#endif
