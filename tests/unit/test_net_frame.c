/* Length-prefixed frame reader and builders (lib/src/net/frame.c). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "libraft/raft.h"
#include "net/frame.h"
#include "proto/raft.pb-c.h"

/* Append one frame carrying len bytes of pattern (i * 7 + seed). */
static size_t put_frame(uint8_t *dst, size_t len, uint8_t seed)
{
	size_t i;

	rframe_header_put(dst, (uint32_t)len);
	for (i = 0; i < len; i++)
		dst[RFRAME_HEADER + i] = (uint8_t)(i * 7 + seed);
	return RFRAME_HEADER + len;
}

static void check_payload(const uint8_t *p, size_t len, size_t want_len,
			  uint8_t seed)
{
	size_t i;

	ck_assert_uint_eq(len, want_len);
	/* One assertion per byte is slow on large frames under sanitizers:
	 * find the first difference, then assert once. */
	for (i = 0; i < len; i++)
		if (p[i] != (uint8_t)(i * 7 + seed))
			break;
	ck_assert_msg(i == len, "payload differs at byte %zu", i);
}

/* The header is the payload length, 4 bytes, most significant first. */
START_TEST(test_header_is_big_endian)
{
	uint8_t h[4];

	rframe_header_put(h, 0x01020304u);
	ck_assert_uint_eq(h[0], 1);
	ck_assert_uint_eq(h[1], 2);
	ck_assert_uint_eq(h[2], 3);
	ck_assert_uint_eq(h[3], 4);
	ck_assert_uint_eq(rframe_header_get(h), 0x01020304u);
}
END_TEST

/* Frames fed one byte at a time come out whole, once each, in order. */
START_TEST(test_frames_split_byte_by_byte_are_reassembled)
{
	struct rframe_reader r;
	uint8_t stream[4096];
	size_t len = 0, i, plen, got = 0;
	const uint8_t *p;
	size_t sizes[] = {0, 1, 300, 1000, 5};
	int rc;

	for (i = 0; i < 5; i++)
		len += put_frame(stream + len, sizes[i], (uint8_t)i);
	rframe_reader_init(&r, 1024);
	for (i = 0; i < len; i++) {
		ck_assert_int_eq(rframe_reader_feed(&r, &stream[i], 1), 0);
		while ((rc = rframe_reader_next(&r, &p, &plen)) == 1) {
			check_payload(p, plen, sizes[got], (uint8_t)got);
			got++;
		}
		ck_assert_int_eq(rc, 0);
	}
	ck_assert_uint_eq(got, 5);
	ck_assert_uint_eq(rframe_reader_pending(&r), 0);
	rframe_reader_free(&r);
}
END_TEST

/* Several frames arriving in one read are all yielded from it. */
START_TEST(test_many_frames_in_one_read_are_all_yielded)
{
	struct rframe_reader r;
	uint8_t stream[100 * (RFRAME_HEADER + 10)];
	size_t len = 0, i, plen, got = 0;
	const uint8_t *p;

	for (i = 0; i < 100; i++)
		len += put_frame(stream + len, 10, (uint8_t)i);
	rframe_reader_init(&r, 1024);
	ck_assert_int_eq(rframe_reader_feed(&r, stream, len), 0);
	while (rframe_reader_next(&r, &p, &plen) == 1) {
		check_payload(p, plen, 10, (uint8_t)got);
		got++;
	}
	ck_assert_uint_eq(got, 100);
	rframe_reader_free(&r);
}
END_TEST

/* A frame of exactly max_frame bytes is accepted; one byte more is refused as
 * soon as its header is in, before any payload arrives. */
START_TEST(test_length_above_max_is_refused_from_the_header)
{
	struct rframe_reader r;
	uint8_t *stream = malloc(RFRAME_HEADER + 64);
	const uint8_t *p;
	size_t plen, len;

	rframe_reader_init(&r, 64);
	len = put_frame(stream, 64, 3);
	ck_assert_int_eq(rframe_reader_feed(&r, stream, len), 0);
	ck_assert_int_eq(rframe_reader_next(&r, &p, &plen), 1);
	check_payload(p, plen, 64, 3);

	rframe_header_put(stream, 65);
	ck_assert_int_eq(rframe_reader_feed(&r, stream, 3), 0);
	ck_assert_int_eq(rframe_reader_next(&r, &p, &plen), 0);
	ck_assert_int_eq(rframe_reader_feed(&r, stream + 3, 1), 0);
	ck_assert_int_eq(rframe_reader_next(&r, &p, &plen), RAFT_ETOOBIG);
	ck_assert_uint_eq(plen, 65);

	rframe_header_put(stream, 0xffffffffu);
	rframe_reader_free(&r);
	rframe_reader_init(&r, 64);
	ck_assert_int_eq(rframe_reader_feed(&r, stream, 4), 0);
	ck_assert_int_eq(rframe_reader_next(&r, &p, &plen), RAFT_ETOOBIG);
	ck_assert_uint_eq(plen, 0xffffffffu);
	rframe_reader_free(&r);
	free(stream);
}
END_TEST

/* Bytes left over when a stream ends are reported: a truncated frame. */
START_TEST(test_truncated_frame_shows_as_pending_bytes)
{
	struct rframe_reader r;
	uint8_t stream[RFRAME_HEADER + 100];
	const uint8_t *p;
	size_t plen;

	put_frame(stream, 100, 0);
	rframe_reader_init(&r, 1024);
	ck_assert_int_eq(rframe_reader_feed(&r, stream, 50), 0);
	ck_assert_int_eq(rframe_reader_next(&r, &p, &plen), 0);
	ck_assert_uint_eq(rframe_reader_pending(&r), 50);
	rframe_reader_free(&r);
}
END_TEST

/* Reading through alloc/commit, as libuv does, in uneven chunks, with a frame
 * larger than one read chunk, gives back every frame intact. */
START_TEST(test_alloc_commit_reads_reassemble_large_frames)
{
	struct rframe_reader r;
	size_t sizes[] = {200000, 3, 70000, 0, 1 << 20};
	size_t total = 0, off = 0, i, plen, got = 0, chunk = 1;
	uint8_t *stream;
	const uint8_t *p;
	uv_buf_t b;

	for (i = 0; i < 5; i++)
		total += RFRAME_HEADER + sizes[i];
	stream = malloc(total);
	for (i = 0; i < 5; i++)
		off += put_frame(stream + off, sizes[i], (uint8_t)i);
	rframe_reader_init(&r, 1 << 20);
	off = 0;
	while (off < total) {
		size_t n;
		rframe_reader_alloc(&r, 65536, &b);
		ck_assert_ptr_nonnull(b.base);
		ck_assert_uint_gt(b.len, 0);
		n = chunk < b.len ? chunk : b.len;
		if (n > total - off)
			n = total - off;
		memcpy(b.base, stream + off, n);
		rframe_reader_commit(&r, n);
		off += n;
		chunk = chunk * 3 + 1; /* 1, 4, 13, ... uneven splits */
		if (chunk > 300000)
			chunk = 7;
		while (rframe_reader_next(&r, &p, &plen) == 1) {
			check_payload(p, plen, sizes[got], (uint8_t)got);
			got++;
		}
	}
	ck_assert_uint_eq(got, 5);
	ck_assert_uint_eq(rframe_reader_pending(&r), 0);
	/* A frame of max_frame never makes the buffer much larger. */
	ck_assert_uint_le(r.cap, (1 << 20) + RFRAME_HEADER + 65536);
	rframe_reader_free(&r);
	free(stream);
}
END_TEST

/* rframe_pack writes a header followed by the message's encoding, which
 * decodes back to the same message; an oversize message is refused. */
START_TEST(test_pack_frames_a_protobuf_message)
{
	Raftpb__Handshake hs = RAFTPB__HANDSHAKE__INIT, *back;
	uint8_t *frame;
	size_t len;

	hs.magic = 0x52414654u;
	hs.node_id = 7;
	hs.client_addr = "127.0.0.1:9";
	ck_assert_int_eq(rframe_pack(&hs.base, 1024, &frame, &len), 0);
	ck_assert_uint_eq(rframe_header_get(frame), len - RFRAME_HEADER);
	back = raftpb__handshake__unpack(NULL, len - RFRAME_HEADER,
					 frame + RFRAME_HEADER);
	ck_assert_ptr_nonnull(back);
	ck_assert_uint_eq(back->node_id, 7);
	ck_assert_str_eq(back->client_addr, "127.0.0.1:9");
	raftpb__handshake__free_unpacked(back, NULL);
	free(frame);

	ck_assert_int_eq(rframe_pack(&hs.base, 4, &frame, &len), RAFT_ETOOBIG);
	ck_assert_int_eq(rframe_build("abc", 3, 2, &frame, &len), RAFT_ETOOBIG);
	ck_assert_int_eq(rframe_build("abc", 3, 3, &frame, &len), 0);
	ck_assert_uint_eq(len, 7);
	ck_assert_mem_eq(frame + RFRAME_HEADER, "abc", 3);
	free(frame);
}
END_TEST

static Suite *frame_suite(void)
{
	Suite *s = suite_create("net_frame");
	TCase *tc = tcase_create("frame");

	tcase_add_test(tc, test_header_is_big_endian);
	tcase_add_test(tc, test_frames_split_byte_by_byte_are_reassembled);
	tcase_add_test(tc, test_many_frames_in_one_read_are_all_yielded);
	tcase_add_test(tc, test_length_above_max_is_refused_from_the_header);
	tcase_add_test(tc, test_truncated_frame_shows_as_pending_bytes);
	tcase_add_test(tc, test_alloc_commit_reads_reassemble_large_frames);
	tcase_add_test(tc, test_pack_frames_a_protobuf_message);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(frame_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
