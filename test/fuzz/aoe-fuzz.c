/*
 * aoe-fuzz: replays a corpus of AoE frames at a running target over an
 * AF_PACKET socket, fast, and accounts for every reply.
 *
 *   aoe-fuzz IFACE CORPUS RESULTS FRAMES TARGET_MAC PROBE_MAC PROBE_SHELF PROBE_SLOT
 *            WINDOW PROBE_EVERY IGNORE_DST_MAC MAX_SECONDS
 *
 * Frames go out in corpus order, round after round, until FRAMES have been
 * sent; each keeps its length (no padding: short frames stay short) and gets
 * tag 0x5A000000 | index when it is long enough to carry one. After every
 * PROBE_EVERY frames a probe (query config read from PROBE_MAC to
 * PROBE_SHELF.PROBE_SLOT, tag 0xA5000000 | seq) goes out; at most WINDOW
 * frames may be sent beyond the last answered probe. The target handles frames
 * in order, so this keeps its receive ring from overflowing and paces the run
 * at the speed the target really processes frames.
 *
 * Replies from TARGET_MAC are matched to corpus entries by tag. RESULTS gets,
 * per entry, how often it was sent and answered, plus up to SAMPLES replies
 * per entry (their first SAMPLE_BYTES bytes), every reply that could not be
 * matched and every reply from another MAC. A JSON summary goes to stdout,
 * with the receive ring's PACKET_STATISTICS (frames the kernel delivered or
 * dropped on it), so replies that never reached us are counted, not guessed.
 * Before exiting, every frame queued on the transmit ring has left.
 *
 * Corpus: "AOEFZC01", u32 count, then per entry u16 length, u16 flags (0),
 * bytes. Results: "AOEFZR01", u32 count, per entry u32 sent, u32 replies,
 * then u32 samples and per sample u32 entry (0xFFFFFFFF: unmatched,
 * 0xFFFFFFFE: from another MAC), u16
 * length, u16 reserved, SAMPLE_BYTES bytes. All little-endian.
 */
#include "../../bench/aoe-pktio.h"

#include <inttypes.h>

#define SAMPLES 3
#define SAMPLE_BYTES 200
#define MAX_UNMATCHED 200
#define FOREIGN 0xFFFFFFFEu /* sample of a reply from another MAC */
#define FUZZ_TAG 0x5A000000u
#define PROBE_TAG 0xA5000000u
#define TAG_KIND(t) ((t) & 0xFF000000u)
#define PROBE_TIMEOUT_NS 200000000ull
/* At the end, outstanding probes are waited for until the wire has been quiet this long. */
#define QUIET_NS 2000000000ull
#define TX_DRAIN_NS 10000000000ull

struct entry {
	uint8_t *bytes;
	uint16_t len;
	uint32_t sent, replies;
	uint8_t samples;
};

struct sample {
	uint32_t entry;
	uint16_t len;
	uint8_t bytes[SAMPLE_BYTES];
};

static struct entry *entries;
static uint32_t count;
static struct sample *samples;
static size_t nsamples, capsamples;
static uint32_t unmatched;
static uint8_t target_mac[6], probe_mac[6], ignore_mac[6];
static uint64_t replies, announcements, foreign, probe_acks, probe_timeouts, ignored_dst;
static uint32_t acked; /* probes answered (or given up on), in order */
static uint64_t last_rx;    /* when a frame last arrived */
static uint64_t kernel_packets, kernel_drops; /* PACKET_STATISTICS, summed: reading resets them */

static int parse_mac(const char *s, uint8_t *out)
{
	unsigned v[6];
	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
		return -1;
	for (int i = 0; i < 6; i++)
		out[i] = (uint8_t)v[i];
	return 0;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void load_corpus(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		die(path);
	char magic[8];
	if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "AOEFZC01", 8) != 0) {
		fprintf(stderr, "%s: not a corpus\n", path);
		exit(1);
	}
	if (fread(&count, 4, 1, f) != 1 || count == 0 || count >= (1u << 24)) {
		fprintf(stderr, "%s: bad count\n", path);
		exit(1);
	}
	entries = calloc(count, sizeof *entries);
	for (uint32_t i = 0; i < count; i++) {
		uint16_t hdr[2];
		if (fread(hdr, 2, 2, f) != 2)
			die("corpus entry");
		entries[i].len = hdr[0];
		entries[i].bytes = malloc(hdr[0] ? hdr[0] : 1);
		if (hdr[0] && fread(entries[i].bytes, 1, hdr[0], f) != hdr[0])
			die("corpus bytes");
		if (hdr[0] >= 24)
			put_be32(entries[i].bytes + 20, FUZZ_TAG | i);
	}
	fclose(f);
}

static void keep_sample(uint32_t entry, const uint8_t *p, unsigned len)
{
	if (nsamples == capsamples) {
		capsamples = capsamples ? capsamples * 2 : 4096;
		samples = realloc(samples, capsamples * sizeof *samples);
		if (!samples)
			die("realloc");
	}
	struct sample *s = &samples[nsamples++];
	s->entry = entry;
	s->len = (uint16_t)len;
	memset(s->bytes, 0, SAMPLE_BYTES);
	memcpy(s->bytes, p, len < SAMPLE_BYTES ? len : SAMPLE_BYTES);
}

static void on_reply(const uint8_t *p, unsigned len)
{
	if (len < 24 || !(p[14] & 0x08))
		return; /* a request, not a reply (another initiator's) */
	if (memcmp(p + 6, target_mac, 6) != 0) {
		if (foreign++ < MAX_UNMATCHED)
			keep_sample(FOREIGN, p, len);
		return;
	}
	if (memcmp(p, ignore_mac, 6) == 0) {
		ignored_dst++; /* the well-behaved client's traffic */
		return;
	}
	uint32_t tag = get_be32(p + 20);
	replies++;
	if (TAG_KIND(tag) == PROBE_TAG && memcmp(p, probe_mac, 6) == 0) {
		uint32_t seq = tag & 0xFFFFFFu;
		probe_acks++;
		if (seq + 1 > acked)
			acked = seq + 1;
		return;
	}
	if (TAG_KIND(tag) == FUZZ_TAG && (tag & 0xFFFFFFu) < count) {
		struct entry *e = &entries[tag & 0xFFFFFFu];
		e->replies++;
		if (e->samples < SAMPLES) {
			e->samples++;
			keep_sample(tag & 0xFFFFFFu, p, len);
		}
		return;
	}
	if (tag == 0 && p[19] == 1) {
		announcements++;
		return;
	}
	if (unmatched++ < MAX_UNMATCHED)
		keep_sample(0xFFFFFFFFu, p, len);
}

static void drain(struct pktio *io)
{
	unsigned len;
	uint8_t *p;
	while ((p = pktio_rx_next(io, &len)) != NULL) {
		last_rx = now_ns();
		on_reply(p, len);
		pktio_rx_release(io);
	}
}

static void read_kernel_stats(struct pktio *io)
{
	struct tpacket_stats st;
	socklen_t len = sizeof st;
	if (getsockopt(io->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) < 0)
		die("getsockopt(PACKET_STATISTICS)");
	kernel_packets += st.tp_packets; /* includes the drops */
	kernel_drops += st.tp_drops;
}

/* Waits until the kernel has taken every frame queued on the transmit ring. */
static void drain_tx(struct pktio *io)
{
	uint64_t deadline = now_ns() + TX_DRAIN_NS;
	for (unsigned i = 0; i < io->tx_nr; i++) {
		struct tpacket2_hdr *h = (struct tpacket2_hdr *)pktio_frame(io, io->tx_base, i);
		for (;;) {
			uint32_t st = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
			if (st == TP_STATUS_AVAILABLE)
				break;
			if (st & TP_STATUS_WRONG_FORMAT) {
				io->tx_errors++;
				__atomic_store_n(&h->tp_status, TP_STATUS_AVAILABLE, __ATOMIC_RELEASE);
				break;
			}
			if (now_ns() > deadline) {
				fprintf(stderr, "transmit ring slot %u still not sent after %llu s\n", i,
					TX_DRAIN_NS / 1000000000ull);
				exit(1);
			}
			io->tx_dirty = 1;
			pktio_flush(io);
			pktio_wait(io, 1000000);
			drain(io);
		}
	}
}

/* Queues a frame of exactly `len` bytes (no padding). Returns 0 if the ring is full. */
static int send_raw(struct pktio *io, const uint8_t *frame, unsigned len)
{
	uint8_t *buf = pktio_tx_get(io);
	if (!buf)
		return 0;
	memcpy(buf, frame, len);
	struct tpacket2_hdr *h = (struct tpacket2_hdr *)pktio_frame(io, io->tx_base, io->tx_idx);
	h->tp_len = len;
	__atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
	if (++io->tx_idx == io->tx_nr)
		io->tx_idx = 0;
	io->tx_dirty = 1;
	io->tx_frames++;
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 13) {
		fprintf(stderr,
			"usage: aoe-fuzz IFACE CORPUS RESULTS FRAMES TARGET_MAC PROBE_MAC PROBE_SHELF "
			"PROBE_SLOT WINDOW PROBE_EVERY IGNORE_DST_MAC MAX_SECONDS\n");
		return 2;
	}
	const char *ifname = argv[1];
	uint64_t frames = strtoull(argv[4], NULL, 10);
	unsigned probe_shelf = (unsigned)atoi(argv[7]), probe_slot = (unsigned)atoi(argv[8]);
	unsigned window = (unsigned)atoi(argv[9]), every = (unsigned)atoi(argv[10]);
	double max_seconds = atof(argv[12]);
	if (parse_mac(argv[5], target_mac) || parse_mac(argv[6], probe_mac) ||
	    parse_mac(argv[11], ignore_mac)) {
		fprintf(stderr, "bad MAC\n");
		return 2;
	}
	if (every == 0 || window < every) {
		fprintf(stderr, "need WINDOW >= PROBE_EVERY > 0\n");
		return 2;
	}
	load_corpus(argv[2]);

	struct pktio io;
	if (pktio_open(&io, ifname, PKTIO_RING, 8192, 1024, 0) < 0)
		return 1;

	uint8_t probe[60];
	memset(probe, 0, sizeof probe);
	memcpy(probe, target_mac, 6);
	memcpy(probe + 6, probe_mac, 6);
	put_be16(probe + 12, AOE_ETHERTYPE);
	probe[14] = 0x10;
	put_be16(probe + 16, (uint16_t)probe_shelf);
	probe[18] = (uint8_t)probe_slot;
	probe[19] = 1;

	uint64_t start = now_ns(), deadline = start + (uint64_t)(max_seconds * 1e9);
	uint64_t sent = 0, tx_full = 0;
	uint32_t probes = 0, next = 0;
	uint64_t last_progress = start;
	uint32_t last_acked = 0;
	int timed_out = 0;

	while (sent < frames) {
		uint64_t now = now_ns();
		if (now > deadline) {
			timed_out = 1;
			break;
		}
		drain(&io);
		if (acked != last_acked) {
			last_acked = acked;
			last_progress = now;
		}
		/* Frames sent beyond the last answered probe. */
		if ((uint64_t)(probes - acked) * every >= window) {
			if (now - last_progress > PROBE_TIMEOUT_NS) {
				acked++; /* give up on the oldest probe: it or its answer was lost */
				probe_timeouts++;
				last_acked = acked;
				last_progress = now;
				continue;
			}
			pktio_flush(&io);
			pktio_wait(&io, 1000000);
			continue;
		}
		if (probes == acked)
			last_progress = now;
		for (unsigned i = 0; i < every && sent < frames; i++) {
			struct entry *e = &entries[next];
			if (!send_raw(&io, e->bytes, e->len)) {
				tx_full++;
				pktio_flush(&io);
				drain(&io);
				i--;
				continue;
			}
			e->sent++;
			sent++;
			if (++next == count)
				next = 0;
		}
		put_be32(probe + 20, PROBE_TAG | (probes & 0xFFFFFFu));
		while (!send_raw(&io, probe, sizeof probe)) {
			tx_full++;
			pktio_flush(&io);
			drain(&io);
		}
		probes++;
		pktio_flush(&io);
	}
	uint64_t sent_done = now_ns();

	/*
	 * Wait for the outstanding probes while replies keep coming (a slow target
	 * is waited for; a lost probe or answer shows as a quiet wire), then
	 * linger for late I/O replies.
	 */
	drain_tx(&io);
	last_rx = now_ns();
	while (probe_acks < probes && now_ns() - last_rx < QUIET_NS) {
		pktio_wait(&io, 1000000);
		drain(&io);
	}
	uint64_t linger = now_ns() + 300000000ull;
	while (now_ns() < linger) {
		pktio_wait(&io, 10000000);
		drain(&io);
	}
	read_kernel_stats(&io);

	FILE *f = fopen(argv[3], "wb");
	if (!f)
		die(argv[3]);
	fwrite("AOEFZR01", 1, 8, f);
	fwrite(&count, 4, 1, f);
	for (uint32_t i = 0; i < count; i++) {
		fwrite(&entries[i].sent, 4, 1, f);
		fwrite(&entries[i].replies, 4, 1, f);
	}
	uint32_t n = (uint32_t)nsamples;
	fwrite(&n, 4, 1, f);
	for (size_t i = 0; i < nsamples; i++) {
		uint16_t reserved = 0;
		fwrite(&samples[i].entry, 4, 1, f);
		fwrite(&samples[i].len, 2, 1, f);
		fwrite(&reserved, 2, 1, f);
		fwrite(samples[i].bytes, 1, SAMPLE_BYTES, f);
	}
	if (fclose(f) != 0)
		die(argv[3]);

	double secs = (double)(sent_done - start) / 1e9;
	printf("{\"sent\":%" PRIu64 ",\"seconds\":%.3f,\"framesPerSecond\":%.0f,\"probes\":%u,"
	       "\"probeAcks\":%" PRIu64 ",\"probeTimeouts\":%" PRIu64 ",\"replies\":%" PRIu64
	       ",\"unmatched\":%u,\"announcements\":%" PRIu64 ",\"foreign\":%" PRIu64
	       ",\"clientFrames\":%" PRIu64 ",\"txFull\":%" PRIu64 ",\"txErrors\":%" PRIu64
	       ",\"rxKernelPackets\":%" PRIu64 ",\"rxKernelDrops\":%" PRIu64 ",\"timedOut\":%s}\n",
	       sent, secs, secs > 0 ? (double)sent / secs : 0.0, probes, probe_acks, probe_timeouts,
	       replies, unmatched, announcements, foreign, ignored_dst, tx_full, io.tx_errors,
	       kernel_packets, kernel_drops, timed_out ? "true" : "false");
	return 0;
}
