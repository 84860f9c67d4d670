/* On-disk format of the log: segment headers, records and the metadata
 * file. Every integer is little-endian. docs/storage.md describes the same
 * layout for readers of the files.
 *
 *   segment file  NAME = first index, 20 decimal digits, then ".seg"
 *     0  magic "LRAFTSEG"          8 bytes
 *     8  version (1)               u32
 *    12  reserved, zero            u32
 *    16  first index               u64  index of the segment's first record
 *    24  reserved, zero            u32
 *    28  CRC32C of bytes 0..27     u32
 *    32  records, back to back, each padded to a multiple of 8 bytes, then
 *        zeros to the end of the preallocated file
 *
 *   record
 *     0  term                      u64  >= 1
 *     8  index                     u64
 *    16  payload length            u32
 *    20  type                      u8   enum raft_entry_type
 *    21  reserved, zero            3 bytes
 *    24  CRC32C of the payload     u32
 *    28  CRC32C of bytes 0..27     u32  (covers the payload CRC too)
 *    32  payload, then zeros up to a multiple of 8
 *
 *   metadata file "meta"
 *     0  magic "LRAFTMET"          8 bytes
 *     8  version (1)               u32
 *    12  reserved, zero            u32
 *    16  term                      u64
 *    24  vote                      u64
 *    32  CRC32C of bytes 0..31     u32
 *    36  reserved, zero            u32
 *
 * A record header of 32 zero bytes marks the end of a segment's records:
 * its CRC field (0) never matches the CRC32C of 28 zero bytes.
 */
#ifndef RLOG_FORMAT_H
#define RLOG_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libraft/raft.h"

#define RLOG_VERSION	1
#define RLOG_SEG_MAGIC	"LRAFTSEG"
#define RLOG_META_MAGIC "LRAFTMET"
#define RLOG_SEG_HDR	32
#define RLOG_REC_HDR	32
#define RLOG_META_SIZE	40
#define RLOG_ALIGN	8
/* Largest payload of one record; keeps every length inside a u32 and every
 * CRC call inside ISA-L's int length. */
#define RLOG_MAX_PAYLOAD (256u * 1024 * 1024)

/* CRC32C (Castagnoli, the iSCSI polynomial) as everyone checks it: initial
 * value 0xFFFFFFFF, reflected, final XOR 0xFFFFFFFF, so that "123456789"
 * gives 0xE3069283. ISA-L's crc32_iscsi() leaves the final XOR out; we add
 * it here. */
uint32_t rlog_crc32c(const void *buf, size_t len);

struct rlog_rec {
	raft_term term;
	raft_index index;
	uint32_t len;
	uint8_t type;
	uint32_t data_crc;
};

/* Bytes a record with a payload of len bytes takes in a segment. */
static inline size_t rlog_rec_size(size_t len)
{
	return RLOG_REC_HDR +
	       ((len + RLOG_ALIGN - 1) & ~(size_t)(RLOG_ALIGN - 1));
}

/* Write the record for e at out (rlog_rec_size(e->len) bytes, padding
 * zeroed). */
void rlog_rec_encode(void *out, const struct raft_entry *e);

/* Parse a record header. Returns false when its header CRC fails. */
bool rlog_rec_decode(const void *in, struct rlog_rec *r);

void rlog_seg_hdr_encode(void *out, raft_index first);

/* Returns NULL and sets *first, or a static text saying what is wrong. */
const char *rlog_seg_hdr_decode(const void *in, raft_index *first);

void rlog_meta_encode(void *out, raft_term term, raft_id vote);
const char *rlog_meta_decode(const void *in, raft_term *term, raft_id *vote);

static inline void rlog_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void rlog_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t rlog_get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline uint64_t rlog_get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#endif /* RLOG_FORMAT_H */
