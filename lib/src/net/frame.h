/* Length-prefixed frames, shared by the peer transport and the client
 * listener: a 4-byte big-endian payload length, then the payload (a
 * protobuf message). See docs/protocol.md.
 *
 * Reading: a struct rframe_reader accumulates the bytes of a stream and
 * yields complete frames. Bytes may come either straight from libuv (give
 * rframe_reader_alloc() to uv_read_start()'s alloc callback, then
 * rframe_reader_commit() the bytes read, so nothing is copied) or from
 * anywhere through rframe_reader_feed(). A length above the reader's
 * maximum is an error the moment the 4 header bytes are in: the caller
 * closes the connection; the reader never allocates for it.
 *
 * Writing: rframe_pack() encodes a protobuf-c message straight into a new
 * frame buffer (one copy of every payload); rframe_build() frames bytes
 * that are already encoded.
 */
#ifndef LIBRAFT_NET_FRAME_H
#define LIBRAFT_NET_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>
#include <uv.h>

#define RFRAME_HEADER 4 /* bytes of the length prefix */

struct rframe_reader {
	size_t max_frame; /* largest payload accepted */
	uint8_t *buf;
	size_t cap;
	size_t start; /* first byte not yet handed out */
	size_t end;   /* one past the last byte received */
};

/* max_frame must be at least 1 and at most UINT32_MAX. */
void rframe_reader_init(struct rframe_reader *r, size_t max_frame);
void rframe_reader_free(struct rframe_reader *r);

/* For a uv_alloc_cb: point buf at free space in the reader (buf->len 0 when
 * out of memory, which libuv reports to the read callback as UV_ENOBUFS).
 * Invalidates frames handed out before. */
void rframe_reader_alloc(struct rframe_reader *r, size_t suggested,
			 uv_buf_t *buf);

/* n bytes were read into the space rframe_reader_alloc() gave. */
void rframe_reader_commit(struct rframe_reader *r, size_t n);

/* Copy n bytes in. Invalidates frames handed out before. Returns 0 or
 * RAFT_ENOMEM. */
int rframe_reader_feed(struct rframe_reader *r, const void *data, size_t n);

/* Take the next complete frame. Returns 1 and sets *payload and *len (valid
 * until the next alloc or feed), 0 if more bytes are needed, or RAFT_ETOOBIG
 * if the next frame's length exceeds max_frame (*len then holds that
 * length; the stream cannot be resynchronised). */
int rframe_reader_next(struct rframe_reader *r, const uint8_t **payload,
		       size_t *len);

/* Bytes received but not yet handed out as a frame: non-zero at the end of a
 * stream means the last frame was truncated. */
size_t rframe_reader_pending(const struct rframe_reader *r);

void rframe_header_put(uint8_t *dst, uint32_t len);
uint32_t rframe_header_get(const uint8_t *src);

/* Encode msg into a new frame of *len bytes (header included), malloc'd
 * into *out. Returns 0, RAFT_ETOOBIG (payload above max_frame) or
 * RAFT_ENOMEM. */
int rframe_pack(const ProtobufCMessage *msg, size_t max_frame, uint8_t **out,
		size_t *len);

/* Frame len bytes of payload into a new malloc'd buffer. Same returns. */
int rframe_build(const void *payload, size_t len, size_t max_frame,
		 uint8_t **out, size_t *outlen);

#endif /* LIBRAFT_NET_FRAME_H */
