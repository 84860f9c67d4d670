/* Length-prefixed frames: reader and builders. See frame.h. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "libraft/raft.h"
#include "net/frame.h"

/* Free space offered to each read when no frame of known size is waiting. */
#define READ_CHUNK (64 * 1024)

/* A buffer grown for one big frame is given back once it empties. */
#define KEEP_CAP (256 * 1024)

void rframe_reader_init(struct rframe_reader *r, size_t max_frame)
{
	assert(max_frame >= 1 && max_frame <= UINT32_MAX);
	memset(r, 0, sizeof(*r));
	r->max_frame = max_frame;
}

void rframe_reader_free(struct rframe_reader *r)
{
	free(r->buf);
	r->buf = NULL;
	r->cap = r->start = r->end = 0;
}

void rframe_header_put(uint8_t *dst, uint32_t len)
{
	dst[0] = (uint8_t)(len >> 24);
	dst[1] = (uint8_t)(len >> 16);
	dst[2] = (uint8_t)(len >> 8);
	dst[3] = (uint8_t)len;
}

uint32_t rframe_header_get(const uint8_t *src)
{
	return (uint32_t)src[0] << 24 | (uint32_t)src[1] << 16 |
	       (uint32_t)src[2] << 8 | (uint32_t)src[3];
}

size_t rframe_reader_pending(const struct rframe_reader *r)
{
	return r->end - r->start;
}

/* How much room the bytes at r->start need: the whole next frame when its
 * header is in and its length is acceptable, else one read chunk. */
static size_t reader_want(const struct rframe_reader *r)
{
	size_t have = r->end - r->start;

	if (have >= RFRAME_HEADER) {
		size_t len = rframe_header_get(r->buf + r->start);
		if (len <= r->max_frame && RFRAME_HEADER + len > have)
			return RFRAME_HEADER + len;
	}
	return have + READ_CHUNK;
}

/* Make room for at least extra more bytes after r->end, moving unconsumed
 * bytes to the front and growing the buffer as needed. */
static int reader_reserve(struct rframe_reader *r, size_t extra)
{
	size_t have = r->end - r->start;
	size_t need = have + extra;
	size_t cap;
	uint8_t *buf;

	if (have == 0) {
		r->start = r->end = 0;
		if (r->cap > KEEP_CAP && need <= KEEP_CAP) {
			free(r->buf);
			r->buf = NULL;
			r->cap = 0;
		}
	}
	if (r->cap - r->end >= extra)
		return 0;
	if (r->cap >= need) {
		memmove(r->buf, r->buf + r->start, have);
		r->start = 0;
		r->end = have;
		return 0;
	}
	/* Powers of two for small frames; exactly what a big frame needs, so
	 * that memory stays within max_frame plus one read chunk. */
	if (need > KEEP_CAP) {
		cap = need;
	} else {
		cap = READ_CHUNK;
		while (cap < need)
			cap *= 2;
	}
	buf = malloc(cap);
	if (buf == NULL)
		return RAFT_ENOMEM;
	if (have > 0)
		memcpy(buf, r->buf + r->start, have);
	free(r->buf);
	r->buf = buf;
	r->cap = cap;
	r->start = 0;
	r->end = have;
	return 0;
}

void rframe_reader_alloc(struct rframe_reader *r, size_t suggested,
			 uv_buf_t *buf)
{
	size_t want = reader_want(r);
	size_t have = r->end - r->start;
	size_t extra = want - have;

	(void)suggested; /* libuv's 64 KiB hint; we size by the frame */
	if (extra < READ_CHUNK)
		extra = READ_CHUNK;
	if (reader_reserve(r, extra) != 0) {
		*buf = uv_buf_init(NULL, 0);
		return;
	}
	*buf =
	    uv_buf_init((char *)r->buf + r->end, (unsigned)(r->cap - r->end));
}

void rframe_reader_commit(struct rframe_reader *r, size_t n)
{
	assert(r->end + n <= r->cap);
	r->end += n;
}

int rframe_reader_feed(struct rframe_reader *r, const void *data, size_t n)
{
	int rc;

	if (n == 0)
		return 0;
	rc = reader_reserve(r, n);
	if (rc != 0)
		return rc;
	memcpy(r->buf + r->end, data, n);
	r->end += n;
	return 0;
}

int rframe_reader_next(struct rframe_reader *r, const uint8_t **payload,
		       size_t *len)
{
	size_t have = r->end - r->start;
	size_t flen;

	if (have < RFRAME_HEADER)
		return 0;
	flen = rframe_header_get(r->buf + r->start);
	if (flen > r->max_frame) {
		*len = flen;
		return RAFT_ETOOBIG;
	}
	if (have - RFRAME_HEADER < flen)
		return 0;
	*payload = r->buf + r->start + RFRAME_HEADER;
	*len = flen;
	r->start += RFRAME_HEADER + flen;
	return 1;
}

int rframe_pack(const ProtobufCMessage *msg, size_t max_frame, uint8_t **out,
		size_t *len)
{
	size_t plen = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf;

	if (plen > max_frame || plen > UINT32_MAX)
		return RAFT_ETOOBIG;
	buf = malloc(RFRAME_HEADER + plen);
	if (buf == NULL)
		return RAFT_ENOMEM;
	rframe_header_put(buf, (uint32_t)plen);
	protobuf_c_message_pack(msg, buf + RFRAME_HEADER);
	*out = buf;
	*len = RFRAME_HEADER + plen;
	return 0;
}

int rframe_build(const void *payload, size_t len, size_t max_frame,
		 uint8_t **out, size_t *outlen)
{
	uint8_t *buf;

	if (len > max_frame || len > UINT32_MAX)
		return RAFT_ETOOBIG;
	buf = malloc(RFRAME_HEADER + len);
	if (buf == NULL)
		return RAFT_ENOMEM;
	rframe_header_put(buf, (uint32_t)len);
	if (len > 0)
		memcpy(buf + RFRAME_HEADER, payload, len);
	*out = buf;
	*outlen = RFRAME_HEADER + len;
	return 0;
}
