/* log — the runtime's one voice: leveled messages on stderr, prefixed
 * "selfprobe: ".  Not for the signal path (uses stdio). */
#ifndef SP_LOG_H
#define SP_LOG_H

enum sp_log_level { SP_LOG_ERROR, SP_LOG_WARN, SP_LOG_INFO, SP_LOG_DEBUG };

extern int sp_log_level;

void sp_log(enum sp_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parse "error"/"warn"/"info"/"debug".  0 or -EINVAL. */
int sp_log_parse_level(const char *s, enum sp_log_level *out);

#define sp_err(...)   sp_log(SP_LOG_ERROR, __VA_ARGS__)
#define sp_warn(...)  sp_log(SP_LOG_WARN, __VA_ARGS__)
#define sp_info(...)  sp_log(SP_LOG_INFO, __VA_ARGS__)
#define sp_debug(...) sp_log(SP_LOG_DEBUG, __VA_ARGS__)

#endif
