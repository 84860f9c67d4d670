/* Encoding and checking of the log's on-disk structures (see format.h). */
#include <string.h>

#include <isa-l/crc.h>

#include "log/format.h"

uint32_t rlog_crc32c(const void *buf, size_t len)
{
	/* ISA-L's crc32_iscsi() takes the initial value as given and does not
	 * invert the result: pass ~0 in and invert what comes out. */
	return crc32_iscsi((unsigned char *)buf, (int)len, 0xFFFFFFFFu) ^
	       0xFFFFFFFFu;
}

void rlog_rec_encode(void *out, const struct raft_entry *e)
{
	uint8_t *p = out;
	size_t size = rlog_rec_size(e->len);

	rlog_put64(p, e->term);
	rlog_put64(p + 8, e->index);
	rlog_put32(p + 16, (uint32_t)e->len);
	p[20] = e->type;
	p[21] = p[22] = p[23] = 0;
	if (e->len > 0)
		memcpy(p + RLOG_REC_HDR, e->data, e->len);
	memset(p + RLOG_REC_HDR + e->len, 0, size - RLOG_REC_HDR - e->len);
	rlog_put32(p + 24, rlog_crc32c(p + RLOG_REC_HDR, e->len));
	rlog_put32(p + 28, rlog_crc32c(p, 28));
}

bool rlog_rec_decode(const void *in, struct rlog_rec *r)
{
	const uint8_t *p = in;

	if (rlog_get32(p + 28) != rlog_crc32c(p, 28))
		return false;
	r->term = rlog_get64(p);
	r->index = rlog_get64(p + 8);
	r->len = rlog_get32(p + 16);
	r->type = p[20];
	r->data_crc = rlog_get32(p + 24);
	return true;
}

void rlog_seg_hdr_encode(void *out, raft_index first)
{
	uint8_t *p = out;

	memset(p, 0, RLOG_SEG_HDR);
	memcpy(p, RLOG_SEG_MAGIC, 8);
	rlog_put32(p + 8, RLOG_VERSION);
	rlog_put64(p + 16, first);
	rlog_put32(p + 28, rlog_crc32c(p, 28));
}

const char *rlog_seg_hdr_decode(const void *in, raft_index *first)
{
	const uint8_t *p = in;

	if (memcmp(p, RLOG_SEG_MAGIC, 8) != 0)
		return "segment header: bad magic, expected \"" RLOG_SEG_MAGIC
		       "\"";
	if (rlog_get32(p + 28) != rlog_crc32c(p, 28))
		return "segment header: checksum mismatch";
	if (rlog_get32(p + 8) != RLOG_VERSION)
		return "segment header: unknown format version, expected 1";
	*first = rlog_get64(p + 16);
	if (*first == 0)
		return "segment header: first index 0, expected >= 1";
	return NULL;
}

void rlog_meta_encode(void *out, raft_term term, raft_id vote)
{
	uint8_t *p = out;

	memset(p, 0, RLOG_META_SIZE);
	memcpy(p, RLOG_META_MAGIC, 8);
	rlog_put32(p + 8, RLOG_VERSION);
	rlog_put64(p + 16, term);
	rlog_put64(p + 24, vote);
	rlog_put32(p + 32, rlog_crc32c(p, 32));
}

const char *rlog_meta_decode(const void *in, raft_term *term, raft_id *vote)
{
	const uint8_t *p = in;

	if (memcmp(p, RLOG_META_MAGIC, 8) != 0)
		return "bad magic, expected \"" RLOG_META_MAGIC "\"";
	if (rlog_get32(p + 32) != rlog_crc32c(p, 32))
		return "checksum mismatch";
	if (rlog_get32(p + 8) != RLOG_VERSION)
		return "unknown format version, expected 1";
	*term = rlog_get64(p + 16);
	*vote = rlog_get64(p + 24);
	return NULL;
}
