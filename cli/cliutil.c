/* Helpers shared by kvctl and kvbench. See cliutil.h. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cliutil.h"

int cli_parse_duration_ms(const char *s, unsigned *ms)
{
	char *end;
	double v, scale = 1000.0;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno != 0 || !isfinite(v) || v <= 0)
		return -1;
	if (strcmp(end, "ms") == 0)
		scale = 1.0;
	else if (strcmp(end, "s") == 0 || *end == '\0')
		scale = 1000.0;
	else if (strcmp(end, "m") == 0)
		scale = 60000.0;
	else
		return -1;
	v *= scale;
	if (v < 1.0 || v > 86400000.0)
		return -1;
	*ms = (unsigned)v;
	return 0;
}

int cli_list_split(const char *s, size_t max, struct cli_list *l, char *err,
		   size_t errlen)
{
	char *p, *save = NULL, *tok;
	size_t n = 1;

	memset(l, 0, sizeof(*l));
	for (p = (char *)s; *p != '\0'; p++)
		n += *p == ',';
	if (n > max) {
		snprintf(err, errlen, "'%s': more than %zu entries", s, max);
		return -1;
	}
	l->buf = strdup(s);
	l->items = calloc(n, sizeof(*l->items));
	if (l->buf == NULL || l->items == NULL) {
		snprintf(err, errlen, "out of memory");
		cli_list_free(l);
		return -1;
	}
	/* strtok_r would skip empty items; walk by hand to refuse them. */
	for (tok = l->buf; tok != NULL; tok = save) {
		save = strchr(tok, ',');
		if (save != NULL)
			*save++ = '\0';
		if (*tok == '\0') {
			snprintf(err, errlen, "'%s': empty entry", s);
			cli_list_free(l);
			return -1;
		}
		l->items[l->n++] = tok;
	}
	return 0;
}

int cli_check_endpoint(const char *s, char *err, size_t errlen)
{
	const char *colon = strrchr(s, ':'), *d;
	size_t hlen;
	unsigned long port = 0;

	if (colon == NULL) {
		snprintf(err, errlen, "'%s': want HOST:PORT (no port)", s);
		return -1;
	}
	hlen = (size_t)(colon - s);
	if (hlen == 0 || (s[0] == '[' && (hlen < 3 || s[hlen - 1] != ']'))) {
		snprintf(err, errlen, "'%s': want HOST:PORT (no host)", s);
		return -1;
	}
	for (d = colon + 1; *d >= '0' && *d <= '9' && port <= 65535; d++)
		port = port * 10 + (unsigned long)(*d - '0');
	if (d == colon + 1 || *d != '\0' || port == 0 || port > 65535) {
		snprintf(err, errlen,
			 "'%s': the port must be a number from 1 to 65535", s);
		return -1;
	}
	return 0;
}

void cli_list_free(struct cli_list *l)
{
	free(l->buf);
	free(l->items);
	memset(l, 0, sizeof(*l));
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if none. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	uint32_t cp;
	size_t len, i;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past Unicode are invalid. */
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

bool cli_utf8_valid(const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i = 0, k;

	while (i < len) {
		if (p[i] == 0)
			return false;
		k = utf8_seq(p + i, len - i);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

void cli_json_string(FILE *f, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i = 0, k;

	fputc('"', f);
	while (i < len) {
		unsigned char ch = p[i];
		k = utf8_seq(p + i, len - i);
		if (k > 1) {
			fwrite(p + i, 1, k, f);
			i += k;
			continue;
		}
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch == '\n')
			fputs("\\n", f);
		else if (ch == '\t')
			fputs("\\t", f);
		else if (ch == '\r')
			fputs("\\r", f);
		else if (ch < 0x20 || ch >= 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
		i++;
	}
	fputc('"', f);
}

void cli_json_base64(FILE *f, const void *data, size_t len)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = data;
	size_t i;

	fputc('"', f);
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v =
		    (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		fputc(tab[v >> 18 & 63], f);
		fputc(tab[v >> 12 & 63], f);
		fputc(tab[v >> 6 & 63], f);
		fputc(tab[v & 63], f);
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		fputc(tab[v >> 18 & 63], f);
		fputc(tab[v >> 12 & 63], f);
		fputs("==", f);
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		fputc(tab[v >> 18 & 63], f);
		fputc(tab[v >> 12 & 63], f);
		fputc(tab[v >> 6 & 63], f);
		fputc('=', f);
	}
	fputc('"', f);
}
