/*
 * aoe-load: AoE initiator load generator (AF_PACKET, EtherType 0x88A2).
 *
 * Discovers the target (query config to shelf.slot), learns its MAC, buffer
 * count and max sectors, asks IDENTIFY DEVICE for the capacity, then keeps
 * N ATA READ SECTORS EXT (0x24) or WRITE SECTORS EXT (0x34) requests in
 * flight for a duration and prints one JSON line.
 *
 * With -L COUNT the requests are spread round robin over the exports
 * SHELF.SLOT .. SHELF.(SLOT+COUNT-1), all of which are discovered first.
 *
 * See usage() or bench/README.md for the options.
 */
#include "aoe-pktio.h"

#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <sys/resource.h>

#define SLOT_BITS 12
#define SLOT_MASK ((1u << SLOT_BITS) - 1)
#define MAX_QD (1 << SLOT_BITS)

/* latency histogram: 100 ns buckets up to 100 ms, then one overflow bucket */
#define HIST_NS 100
#define HIST_N 1000000

#define TMO_MAX_NS 1000000000ull /* retransmit backoff cap */

#define MAX_SPAN 255 /* slots 0..254 of one shelf */

#define MAX_PIDS 64 /* -p: target processes whose CPU time we sample */

struct slot {
	uint32_t tag;
	uint32_t gen;
	uint64_t lba;
	uint64_t t_first; /* first transmission */
	uint64_t t_send;  /* last transmission */
	uint64_t tmo;     /* current timeout, doubles on every retransmit */
	int tries;
	int active;
	int write; /* this request is a write */
	int t;     /* index of the target (export) in targets[] */
};

/* One export we send requests to: only targets[0] without -L. */
struct target {
	uint8_t mac[6];
	int slot, bufcnt, maxsect, fw, found;
	uint64_t capacity;
	uint64_t ops; /* good completions in the measured window */
};

static struct {
	const char *ifname;
	int shelf, slot, qd, write, random, sectors, verify, force_qd, busy;
	int mode, max_tries, discover_only, verbose;
	int span; /* -L: number of consecutive slots the requests are spread over */
	int mix;  /* -M: percentage of requests that are writes; -1: all of one kind (-w) */
	double seconds, warmup, timeout_ms, discover_s;
	uint64_t lba_start, lba_count;
	int have_range;
	uint64_t seed;
} opt = {
	.shelf = -1,
	.slot = -1,
	.qd = 1,
	.seconds = 5,
	.timeout_ms = 20,
	.discover_s = 5,
	.max_tries = 10,
	.mode = PKTIO_RXRING,
	.span = 1,
	.mix = -1,
};

static struct pktio io;
static uint8_t tmac[6];
static int tshelf, tslot, tbufcnt, tmaxsect, tfw;
static uint64_t tcapacity;
static struct target targets[MAX_SPAN];
static unsigned next_target; /* round robin over targets[] */

static struct slot *slots;
static int qd;
static uint32_t *hist;
static uint64_t lat_max, lat_sum;
/* -M: the writes among the measured completions, and their latencies' sum */
static uint64_t wops, wlat_sum;

static uint64_t ops, ops_all, ops_total, errors, retransmits, timeouts, abandoned, stale, unknown,
	mismatches, short_frames, ata_errors, aoe_errors;
static uint64_t measure_start, measure_end;
static uint64_t next_lba, chunks_issued, chunks_total, chunks_done;
static int phase_write; /* current phase: 1 write, 0 read */
static int limit_mode;	/* verify phases: fixed number of chunks */
static uint64_t rng_state;
static volatile sig_atomic_t interrupted;

/* -p: the target's processes, sampled when the measured window opens and when
 * it closes, so its CPU time covers exactly the requests we count */
static int tpids[MAX_PIDS], ntpids;
static long long tcpu_t0 = -1, tcpu_t1 = -1; /* clock ticks */
static uint64_t tcpu_ns0, tcpu_ns1;

static void on_signal(int s)
{
	(void)s;
	interrupted = 1;
}

/* utime+stime+cutime+cstime of the -p processes, in clock ticks; -1 if one is gone */
static long long target_ticks(void)
{
	long long total = 0;
	for (int k = 0; k < ntpids; k++) {
		char path[64], buf[1024];
		snprintf(path, sizeof path, "/proc/%d/stat", tpids[k]);
		FILE *fp = fopen(path, "r");
		if (!fp)
			return -1;
		size_t n = fread(buf, 1, sizeof buf - 1, fp);
		fclose(fp);
		buf[n] = 0;
		/* fields after the command name, which may hold spaces: ") state ..." */
		char *p = strrchr(buf, ')');
		unsigned long long v[4];
		if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu",
				 &v[0], &v[1], &v[2], &v[3]) != 4)
			return -1;
		total += (long long)(v[0] + v[1] + v[2] + v[3]);
	}
	return total;
}

static inline uint64_t xorshift64(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static inline uint64_t splitmix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

/* Verify pattern: every 8-byte word depends on (seed, lba, word index). */
static void fill_pattern(uint8_t *d, uint64_t lba, int nsect)
{
	for (int s = 0; s < nsect; s++) {
		uint64_t *w = (uint64_t *)(d + s * 512);
		uint64_t base = opt.seed ^ ((lba + s) << 6);
		for (int i = 0; i < 64; i++)
			w[i] = splitmix(base + i);
	}
}

static int check_pattern(const uint8_t *d, uint64_t lba, int nsect)
{
	for (int s = 0; s < nsect; s++) {
		uint64_t base = opt.seed ^ ((lba + s) << 6);
		for (int i = 0; i < 64; i++) {
			uint64_t w;
			memcpy(&w, d + s * 512 + i * 8, 8);
			if (w != splitmix(base + i)) {
				if (opt.verbose && mismatches < 5)
					fprintf(stderr, "mismatch at lba %llu word %d\n",
						(unsigned long long)(lba + s), i);
				return -1;
			}
		}
	}
	return 0;
}

static void build_header(uint8_t *f, uint8_t cmd, uint32_t tag, int t)
{
	memcpy(f, targets[t].mac, 6);
	memcpy(f + 6, io.mac, 6);
	f[12] = 0x88;
	f[13] = 0xA2;
	f[14] = 0x10;
	f[15] = 0;
	put_be16(f + 16, (uint16_t)tshelf);
	f[18] = (uint8_t)targets[t].slot;
	f[19] = cmd;
	put_be32(f + 20, tag);
}

static void send_ata(int t, uint8_t acmd, uint8_t aflags, uint8_t cnt, uint64_t lba, uint32_t tag,
		     int with_data)
{
	uint8_t *f = pktio_tx_get(&io);
	if (!f)
		return; /* ring full: the request is "lost"; the timeout resends it */
	build_header(f, 0, tag, t);
	f[24] = aflags;
	f[25] = 0;
	f[26] = cnt;
	f[27] = acmd;
	for (int i = 0; i < 6; i++)
		f[28 + i] = (uint8_t)(lba >> (8 * i));
	f[34] = f[35] = 0;
	unsigned len = 36;
	if (with_data) {
		if (opt.verify)
			fill_pattern(f + 36, lba, cnt);
		len += cnt * 512u;
	}
	pktio_tx_commit(&io, f, len);
}

static void transmit(int i, uint64_t now)
{
	struct slot *s = &slots[i];
	s->gen = (s->gen + 1) & ((1u << (32 - SLOT_BITS)) - 1);
	s->tag = s->gen << SLOT_BITS | (uint32_t)i;
	s->t_send = now;
	s->tries++;
	if (s->write)
		send_ata(s->t, 0x34, 0x40 | 0x01, (uint8_t)opt.sectors, s->lba, s->tag, 1);
	else
		send_ata(s->t, 0x24, 0x40, (uint8_t)opt.sectors, s->lba, s->tag, 0);
}

/* Start a new request in slot i; returns 0 if there is no more work. */
static int issue_new(int i, uint64_t now)
{
	struct slot *s = &slots[i];
	uint64_t nchunks = opt.lba_count / opt.sectors;
	if (limit_mode && chunks_issued >= chunks_total) {
		s->active = 0;
		return 0;
	}
	if (opt.random && !limit_mode)
		s->lba = opt.lba_start + (xorshift64() % nchunks) * opt.sectors;
	else {
		s->lba = opt.lba_start + next_lba;
		next_lba += opt.sectors;
		if (next_lba + opt.sectors > opt.lba_count)
			next_lba = 0;
	}
	chunks_issued++;
	s->write = opt.mix >= 0 ? (int)(xorshift64() % 100) < opt.mix : phase_write;
	if (opt.span > 1) {
		s->t = (int)next_target;
		if (++next_target == (unsigned)opt.span)
			next_target = 0;
	}
	s->tries = 0;
	s->tmo = (uint64_t)(opt.timeout_ms * 1e6);
	s->active = 1;
	s->t_first = now;
	transmit(i, now);
	return 1;
}

static void complete(int i, uint64_t now, int ok)
{
	struct slot *s = &slots[i];
	s->active = 0;
	chunks_done++;
	ops_total++;
	if (ok)
		ops_all++;
	if (ok && now >= measure_start && now <= measure_end) {
		uint64_t lat = now - s->t_first;
		uint64_t b = lat / HIST_NS;
		hist[b < HIST_N ? b : HIST_N]++;
		if (lat > lat_max)
			lat_max = lat;
		lat_sum += lat;
		if (s->write) {
			wops++;
			wlat_sum += lat;
		}
		ops++;
		targets[s->t].ops++;
	}
	if (!interrupted && now < measure_end)
		issue_new(i, now);
}

static void handle_response(const uint8_t *f, unsigned len, uint64_t now)
{
	if (len < 24 || f[12] != 0x88 || f[13] != 0xA2)
		return;
	if ((f[14] >> 4) != 1 || !(f[14] & 0x08))
		return; /* not a v1 response */
	if (f[19] != 0)
		return; /* config announcements and the like */
	int t = f[18] - tslot;
	if (get_be16(f + 16) != tshelf || t < 0 || t >= opt.span || memcmp(f + 6, targets[t].mac, 6))
		return; /* some other target */
	uint32_t tag = get_be32(f + 20);
	unsigned i = tag & SLOT_MASK;
	if (i >= (unsigned)qd) {
		unknown++;
		errors++;
		return;
	}
	struct slot *s = &slots[i];
	if (s->active && s->tag == tag && s->t != t) {
		/* our tag, but answered by another export of the -L range */
		unknown++;
		errors++;
		return;
	}
	if (!s->active || s->tag != tag) {
		/* an older generation of one of our slots: late answer to a
		 * request we already retransmitted (or a duplicate) */
		uint32_t g = tag >> SLOT_BITS;
		uint32_t d = (s->gen - g) & ((1u << (32 - SLOT_BITS)) - 1);
		if (d != 0 && d < (1u << (31 - SLOT_BITS)))
			stale++;
		else {
			unknown++;
			errors++;
		}
		return;
	}
	int ok = 1;
	if (f[14] & 0x04) {
		aoe_errors++;
		ok = 0;
	} else if (len < 36) {
		short_frames++;
		ok = 0;
	} else if (f[27] != 0x40) {
		ata_errors++;
		ok = 0;
	} else if (!s->write) {
		if (len < 36u + opt.sectors * 512u) {
			short_frames++;
			ok = 0;
		} else if (opt.verify && check_pattern(f + 36, s->lba, opt.sectors) < 0) {
			mismatches++;
			ok = 0;
		}
	}
	if (!ok)
		errors++;
	complete((int)i, now, ok);
}

static void check_timeouts(uint64_t now)
{
	for (int i = 0; i < qd; i++) {
		struct slot *s = &slots[i];
		if (!s->active || (int64_t)(now - s->t_send) < (int64_t)s->tmo)
			continue;
		timeouts++;
		if (s->tries >= opt.max_tries) {
			abandoned++;
			errors++;
			s->active = 0;
			chunks_done++;
			if (now < measure_end)
				issue_new(i, now);
			continue;
		}
		retransmits++;
		s->tmo *= 2;
		if (s->tmo > TMO_MAX_NS)
			s->tmo = TMO_MAX_NS;
		transmit(i, now);
	}
}

/* Run one phase until the end time (or, in limit mode, until all chunks are done). */
static void run_phase(uint64_t t_end)
{
	uint64_t now = now_ns();
	uint64_t tick = (uint64_t)(opt.timeout_ms * 1e6 / 4);
	if (tick < 100000)
		tick = 100000;
	uint64_t next_tick = now + tick;
	for (int i = 0; i < qd; i++)
		if (!issue_new(i, now))
			break;
	pktio_flush(&io);
	for (;;) {
		now = now_ns();
		if (ntpids && tcpu_t0 < 0 && now >= measure_start) {
			tcpu_t0 = target_ticks();
			tcpu_ns0 = now;
		}
		if (now >= t_end || interrupted)
			break;
		if (limit_mode && chunks_done >= chunks_total)
			break;
		int got = 0;
		unsigned len;
		uint8_t *f;
		while ((f = pktio_rx_next(&io, &len)) != NULL) {
			handle_response(f, len, now_ns());
			pktio_rx_release(&io);
			if (++got >= 256)
				break;
		}
		pktio_flush(&io);
		if (now >= next_tick) {
			check_timeouts(now);
			pktio_flush(&io);
			next_tick = now + tick;
		}
		if (!got && !opt.busy) {
			uint64_t until = next_tick < t_end ? next_tick : t_end;
			int64_t w = (int64_t)(until - now);
			pktio_wait(&io, w > 0 ? w : 0);
		}
	}
}

/* ---- discovery ---- */

/* Queues a query config (read) to shelf.slot, broadcast; -1 if the TX ring is full. */
static int send_query(uint16_t shelf, uint8_t slot, uint32_t tag)
{
	uint8_t *f = pktio_tx_get(&io);
	if (!f)
		return -1;
	memset(f, 0xff, 6);
	memcpy(f + 6, io.mac, 6);
	f[12] = 0x88;
	f[13] = 0xA2;
	f[14] = 0x10;
	f[15] = 0;
	put_be16(f + 16, shelf);
	f[18] = slot;
	f[19] = 1;
	put_be32(f + 20, tag);
	memset(f + 24, 0, 8);
	pktio_tx_commit(&io, f, 32);
	return 0;
}

/* A query config response without the error flag (an answer or an announcement). */
static int is_config_response(const uint8_t *f, unsigned len)
{
	return len >= 32 && f[12] == 0x88 && f[13] == 0xA2 && (f[14] >> 4) == 1 &&
	       (f[14] & 0x08) && !(f[14] & 0x04) && f[19] == 1;
}

static int discover(void)
{
	uint64_t deadline = now_ns() + (uint64_t)(opt.discover_s * 1e9);
	uint64_t next_send = 0;
	uint16_t qsh = opt.shelf < 0 ? 0xFFFF : (uint16_t)opt.shelf;
	uint8_t qsl = opt.slot < 0 ? 0xFF : (uint8_t)opt.slot;
	while (now_ns() < deadline && !interrupted) {
		uint64_t now = now_ns();
		if (now >= next_send) {
			if (send_query(qsh, qsl, 0xC0F16000u) == 0)
				pktio_flush(&io);
			next_send = now + 200000000ull;
		}
		unsigned len;
		uint8_t *f;
		while ((f = pktio_rx_next(&io, &len)) != NULL) {
			int found = 0;
			if (is_config_response(f, len)) {
				uint16_t sh = get_be16(f + 16);
				uint8_t sl = f[18];
				if ((opt.shelf < 0 || sh == opt.shelf) && (opt.slot < 0 || sl == opt.slot)) {
					memcpy(tmac, f + 6, 6);
					tshelf = sh;
					tslot = sl;
					tbufcnt = get_be16(f + 24);
					tfw = get_be16(f + 26);
					tmaxsect = f[28] ? f[28] : 2;
					found = 1;
				}
			}
			pktio_rx_release(&io);
			if (found) {
				struct target *t = &targets[0];
				memcpy(t->mac, tmac, 6);
				t->slot = tslot;
				t->bufcnt = tbufcnt;
				t->maxsect = tmaxsect;
				t->fw = tfw;
				t->found = 1;
				return 0;
			}
		}
		pktio_wait(&io, 20000000);
	}
	return -1;
}

/*
 * -L: discover every export SHELF.SLOT .. SHELF.(SLOT+span-1). A query to
 * each one still missing goes out every 200 ms (announcements count too).
 * The globals tmac, tbufcnt, tmaxsect, tfw describe the first export, except
 * that tbufcnt and tmaxsect are the smallest of all.
 */
static int discover_span(void)
{
	uint64_t deadline = now_ns() + (uint64_t)(opt.discover_s * 1e9);
	uint64_t next_send = 0;
	int nfound = 0;
	while (now_ns() < deadline && !interrupted) {
		uint64_t now = now_ns();
		if (now >= next_send) {
			for (int k = 0; k < opt.span; k++)
				if (!targets[k].found &&
				    send_query((uint16_t)opt.shelf, (uint8_t)(opt.slot + k),
					       0xC0F16000u | (uint32_t)k) < 0)
					break;
			pktio_flush(&io);
			next_send = now + 200000000ull;
		}
		unsigned len;
		uint8_t *f;
		while ((f = pktio_rx_next(&io, &len)) != NULL) {
			if (is_config_response(f, len) && get_be16(f + 16) == opt.shelf) {
				int k = f[18] - opt.slot;
				if (k >= 0 && k < opt.span && !targets[k].found) {
					struct target *t = &targets[k];
					memcpy(t->mac, f + 6, 6);
					t->slot = f[18];
					t->bufcnt = get_be16(f + 24);
					t->fw = get_be16(f + 26);
					t->maxsect = f[28] ? f[28] : 2;
					t->found = 1;
					nfound++;
				}
			}
			pktio_rx_release(&io);
		}
		if (nfound == opt.span)
			break;
		pktio_wait(&io, 20000000);
	}
	if (nfound < opt.span) {
		for (int k = 0; k < opt.span; k++)
			if (!targets[k].found)
				fprintf(stderr, "aoe-load: e%d.%d did not answer\n", opt.shelf,
					opt.slot + k);
		return -1;
	}
	memcpy(tmac, targets[0].mac, 6);
	tshelf = opt.shelf;
	tslot = opt.slot;
	tfw = targets[0].fw;
	tbufcnt = targets[0].bufcnt;
	tmaxsect = targets[0].maxsect;
	for (int k = 1; k < opt.span; k++) {
		if (targets[k].bufcnt < tbufcnt)
			tbufcnt = targets[k].bufcnt;
		if (targets[k].maxsect < tmaxsect)
			tmaxsect = targets[k].maxsect;
	}
	return 0;
}

/* IDENTIFY DEVICE to targets[t]; sets its capacity (and tcapacity). */
static int identify(int t)
{
	for (int attempt = 0; attempt < 5 && !interrupted; attempt++) {
		uint32_t tag = 0x1D000000u | (uint32_t)t << 8 | (uint32_t)attempt;
		send_ata(t, 0xEC, 0x00, 1, 0, tag, 0);
		pktio_flush(&io);
		uint64_t deadline = now_ns() + 300000000ull;
		while (now_ns() < deadline) {
			unsigned len;
			uint8_t *f;
			while ((f = pktio_rx_next(&io, &len)) != NULL) {
				int done = 0;
				if (len >= 36 + 512 && (f[14] & 0x08) && f[19] == 0 &&
				    get_be32(f + 20) == tag && !(f[14] & 0x04) && f[27] == 0x40) {
					const uint8_t *d = f + 36;
					uint64_t cap = 0;
					for (int i = 0; i < 4; i++)
						cap |= (uint64_t)(d[2 * (100 + i)] | d[2 * (100 + i) + 1] << 8)
						       << (16 * i);
					if (!cap)
						cap = (uint64_t)(d[120] | d[121] << 8) |
						      (uint64_t)(d[122] | d[123] << 8) << 16;
					tcapacity = cap;
					targets[t].capacity = cap;
					done = 1;
				}
				pktio_rx_release(&io);
				if (done)
					return 0;
			}
			pktio_wait(&io, 20000000);
		}
	}
	return -1;
}

static double percentile(double p)
{
	if (!ops)
		return 0;
	uint64_t want = (uint64_t)ceil(p * (double)ops);
	if (want < 1)
		want = 1;
	uint64_t acc = 0;
	for (int b = 0; b <= HIST_N; b++) {
		acc += hist[b];
		if (acc >= want)
			return b == HIST_N ? lat_max / 1000.0 : (b + 0.5) * HIST_NS / 1000.0;
	}
	return lat_max / 1000.0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: aoe-load -i IFACE [options]\n"
		"  -i IFACE   interface to use (required)\n"
		"  -s SHELF   target shelf (default: any)     -l SLOT  target slot (default: any)\n"
		"  -L COUNT   spread requests round robin over slots SLOT..SLOT+COUNT-1 of SHELF\n"
		"             (needs -s and -l; the queue depth is the total over all of them)\n"
		"  -q DEPTH   requests in flight (1); capped by the target's buffer count unless -f\n"
		"  -f         do not cap the queue depth by the advertised buffer count\n"
		"  -t SECS    measured duration (5)            -W SECS  warm-up before measuring (0)\n"
		"  -w         writes (WRITE SECTORS EXT) instead of reads\n"
		"  -M PCT     mixed: each request a write with probability PCT %%, else a read\n"
		"  -r         random LBAs (aligned to -n) instead of sequential\n"
		"  -n SECT    sectors per request (default: the target's max sectors)\n"
		"  -b RANGE   LBA range: COUNT or START:COUNT sectors (default: whole device)\n"
		"  -V         verify: write the range with a pattern, then read it back and check\n"
		"  -T MS      first retransmit timeout in ms (20), doubling per retry up to 1 s\n"
		"  -R N       transmissions before a request is abandoned (10, about 5 s)\n"
		"  -m MODE    rxring (RX ring + sendmmsg, default), ring (RX+TX rings), mmsg\n"
		"  -B         busy-poll instead of sleeping in ppoll()\n"
		"  -D SECS    discovery timeout (5)            -d       discover only, print target\n"
		"  -S SEED    random seed                      -v       verbose (stderr)\n"
		"  -p PIDS    comma-separated target PIDs: report their CPU time (utime+stime,\n"
		"             children included) over the measured window\n");
	exit(2);
}

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}
static double cpu_mark;

static uint64_t phase_t0;

static void print_json(double secs, const char *phase)
{
	double elapsed = (now_ns() - phase_t0) / 1e9;
	double cpu = cpu_seconds() - cpu_mark;
	uint64_t bytes = ops * (uint64_t)opt.sectors * 512u;
	/* -L only: how evenly the good completions were spread over the exports */
	char cpu_json[160] = "";
	if (ntpids && tcpu_t0 >= 0 && tcpu_t1 >= tcpu_t0)
		snprintf(cpu_json, sizeof cpu_json,
			 ",\"target_cpu_window_s\":%.3f,\"target_cpu_window_wall_s\":%.3f",
			 (double)(tcpu_t1 - tcpu_t0) / (double)sysconf(_SC_CLK_TCK),
			 (tcpu_ns1 - tcpu_ns0) / 1e9);
	char mix_json[128] = "";
	if (opt.mix >= 0)
		snprintf(mix_json, sizeof mix_json,
			 ",\"write_pct\":%d,\"writes\":%llu,\"write_mean_us\":%.1f,\"read_mean_us\":%.1f",
			 opt.mix, (unsigned long long)wops, wops ? wlat_sum / (double)wops / 1000.0 : 0,
			 ops > wops ? (lat_sum - wlat_sum) / (double)(ops - wops) / 1000.0 : 0);
	char span_json[128] = "";
	if (opt.span > 1) {
		uint64_t lo = UINT64_MAX, hi = 0;
		for (int k = 0; k < opt.span; k++) {
			if (targets[k].ops < lo)
				lo = targets[k].ops;
			if (targets[k].ops > hi)
				hi = targets[k].ops;
		}
		snprintf(span_json, sizeof span_json, ",\"slots\":%d,\"slot_ops_min\":%llu,\"slot_ops_max\":%llu",
			 opt.span, (unsigned long long)lo, (unsigned long long)hi);
	}
	printf("{\"ops\":%llu,\"seconds\":%.3f,\"req_per_s\":%.0f,\"mb_per_s\":%.1f,"
	       "\"p50_us\":%.1f,\"p99_us\":%.1f,\"errors\":%llu,\"retransmits\":%llu,"
	       "\"timeouts\":%llu,"
	       "\"p999_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f,\"abandoned\":%llu,"
	       "\"stale\":%llu,\"unknown_tags\":%llu,\"aoe_errors\":%llu,\"ata_errors\":%llu,"
	       "\"short\":%llu,\"mismatches\":%llu,\"tx_full\":%llu,\"tx_errors\":%llu,"
	       "\"op\":\"%s\",\"pattern\":\"%s\",\"qd\":%d,\"qd_requested\":%d,\"sectors\":%d,"
	       "\"bufcnt\":%d,\"max_sectors\":%d,\"mtu\":%d,\"io\":\"%s\",\"busy_poll\":%s,"
	       "\"target\":\"%02x:%02x:%02x:%02x:%02x:%02x\",\"shelf\":%d,\"slot\":%d,"
	       "\"firmware\":\"0x%04x\",\"capacity\":%llu,\"client_cpu_s\":%.3f,"
	       "\"ops_all\":%llu,\"elapsed_s\":%.3f%s%s%s%s%s%s}\n",
	       (unsigned long long)ops, secs, secs > 0 ? ops / secs : 0,
	       secs > 0 ? bytes / secs / 1e6 : 0, percentile(0.50), percentile(0.99),
	       (unsigned long long)errors, (unsigned long long)retransmits,
	       (unsigned long long)timeouts, percentile(0.999), lat_max / 1000.0,
	       ops ? lat_sum / (double)ops / 1000.0 : 0, (unsigned long long)abandoned,
	       (unsigned long long)stale, (unsigned long long)unknown,
	       (unsigned long long)aoe_errors, (unsigned long long)ata_errors,
	       (unsigned long long)short_frames, (unsigned long long)mismatches,
	       (unsigned long long)io.tx_full, (unsigned long long)io.tx_errors,
	       opt.mix >= 0 ? "mixed" : phase_write ? "write" : "read", opt.random ? "random" : "seq", qd, opt.qd,
	       opt.sectors, tbufcnt, tmaxsect, io.mtu, iomode_name(opt.mode),
	       opt.busy ? "true" : "false", tmac[0], tmac[1], tmac[2], tmac[3], tmac[4], tmac[5],
	       tshelf, tslot, tfw, (unsigned long long)tcapacity, cpu,
	       (unsigned long long)ops_all, elapsed, phase ? ",\"phase\":\"" : "",
	       phase ? phase : "", phase ? "\"" : "", span_json, cpu_json, mix_json);
	fflush(stdout);
}

static void reset_stats(void)
{
	memset(hist, 0, sizeof(uint32_t) * (HIST_N + 1));
	lat_max = lat_sum = wops = wlat_sum = 0;
	ops = ops_all = ops_total = errors = retransmits = timeouts = abandoned = stale = unknown = 0;
	mismatches = short_frames = ata_errors = aoe_errors = 0;
	io.tx_full = io.tx_errors = 0;
	chunks_issued = chunks_done = 0;
	next_lba = 0;
	next_target = 0;
	for (int k = 0; k < opt.span; k++)
		targets[k].ops = 0;
	for (int i = 0; i < qd; i++)
		slots[i].active = 0;
}

/* Drain late responses so the next phase starts clean. */
static void drain(uint64_t ns)
{
	uint64_t end = now_ns() + ns;
	while (now_ns() < end) {
		unsigned len;
		uint8_t *f;
		int got = 0;
		while ((f = pktio_rx_next(&io, &len)) != NULL) {
			pktio_rx_release(&io);
			got++;
		}
		if (!got)
			pktio_wait(&io, 1000000);
	}
}

int main(int argc, char **argv)
{
	int c;
	opt.seed = now_ns() ^ ((uint64_t)getpid() << 32);
	while ((c = getopt(argc, argv, "i:s:l:L:q:t:wrM:n:b:VT:R:m:BD:dS:W:fp:vh")) != -1) {
		switch (c) {
		case 'i':
			opt.ifname = optarg;
			break;
		case 's':
			opt.shelf = (int)strtol(optarg, NULL, 0);
			break;
		case 'l':
			opt.slot = (int)strtol(optarg, NULL, 0);
			break;
		case 'L':
			opt.span = atoi(optarg);
			break;
		case 'q':
			opt.qd = atoi(optarg);
			break;
		case 't':
			opt.seconds = atof(optarg);
			break;
		case 'w':
			opt.write = 1;
			break;
		case 'r':
			opt.random = 1;
			break;
		case 'M': {
			char *end;
			long pct = strtol(optarg, &end, 10);
			opt.mix = *optarg && !*end && pct >= 0 && pct <= 100 ? (int)pct : -2;
			if (opt.mix < 0) {
				fprintf(stderr, "aoe-load: -M takes a percentage, 0 to 100\n");
				return 2;
			}
			break;
		}
		case 'n':
			opt.sectors = atoi(optarg);
			break;
		case 'b': {
			char *colon = strchr(optarg, ':');
			if (colon) {
				opt.lba_start = strtoull(optarg, NULL, 0);
				opt.lba_count = strtoull(colon + 1, NULL, 0);
			} else {
				opt.lba_count = strtoull(optarg, NULL, 0);
			}
			opt.have_range = 1;
			break;
		}
		case 'V':
			opt.verify = 1;
			break;
		case 'T':
			opt.timeout_ms = atof(optarg);
			break;
		case 'R':
			opt.max_tries = atoi(optarg);
			break;
		case 'm':
			opt.mode = parse_iomode(optarg);
			break;
		case 'B':
			opt.busy = 1;
			break;
		case 'D':
			opt.discover_s = atof(optarg);
			break;
		case 'd':
			opt.discover_only = 1;
			break;
		case 'S':
			opt.seed = strtoull(optarg, NULL, 0);
			break;
		case 'W':
			opt.warmup = atof(optarg);
			break;
		case 'f':
			opt.force_qd = 1;
			break;
		case 'p':
			for (char *tok = strtok(optarg, ","); tok; tok = strtok(NULL, ",")) {
				if (ntpids == MAX_PIDS || (tpids[ntpids] = atoi(tok)) <= 0)
					usage();
				ntpids++;
			}
			break;
		case 'v':
			opt.verbose = 1;
			break;
		default:
			usage();
		}
	}
	if (!opt.ifname || opt.qd < 1 || opt.qd > MAX_QD || opt.timeout_ms <= 0)
		usage();
	if (opt.span < 1 || opt.span > MAX_SPAN ||
	    (opt.span > 1 && (opt.shelf < 0 || opt.shelf >= 0xFFFF || opt.slot < 0 ||
			      opt.slot + opt.span - 1 > 254))) {
		fprintf(stderr, "aoe-load: -L COUNT needs -s SHELF and -l SLOT, with SLOT+COUNT-1 <= 254\n");
		usage();
	}
	if (opt.mix >= 0 && (opt.verify || opt.write)) {
		fprintf(stderr, "aoe-load: -M chooses reads and writes itself: not with -w or -V\n");
		usage();
	}
	rng_state = opt.seed | 1;

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	if (pktio_open(&io, opt.ifname, opt.mode, 4096, 2048, 8 << 20) < 0)
		return 1;
	if (opt.span > 1 ? discover_span() < 0 : discover() < 0) {
		if (opt.span > 1)
			fprintf(stderr, "aoe-load: not every target e%d.%d..%d answered on %s\n",
				opt.shelf, opt.slot, opt.slot + opt.span - 1, opt.ifname);
		else
			fprintf(stderr, "aoe-load: no target e%d.%d answered on %s\n", opt.shelf,
				opt.slot, opt.ifname);
		return 3;
	}
	for (int k = 0; k < opt.span; k++) {
		if (identify(k) < 0) {
			if (!opt.have_range) {
				fprintf(stderr, "aoe-load: IDENTIFY failed and no -b range given\n");
				return 3;
			}
		}
	}
	/* -L: the LBA range has to fit the smallest export */
	for (int k = 0; k < opt.span; k++)
		if (targets[k].capacity && targets[k].capacity < tcapacity)
			tcapacity = targets[k].capacity;
	char span_field[32] = "";
	if (opt.span > 1)
		snprintf(span_field, sizeof span_field, ",\"slots\":%d", opt.span);
	if (opt.verbose || opt.discover_only)
		fprintf(opt.discover_only ? stdout : stderr,
			"{\"target\":\"%02x:%02x:%02x:%02x:%02x:%02x\",\"shelf\":%d,\"slot\":%d,"
			"\"bufcnt\":%d,\"max_sectors\":%d,\"firmware\":\"0x%04x\",\"capacity\":%llu,"
			"\"mtu\":%d%s}\n",
			tmac[0], tmac[1], tmac[2], tmac[3], tmac[4], tmac[5], tshelf, tslot, tbufcnt,
			tmaxsect, tfw, (unsigned long long)tcapacity, io.mtu, span_field);
	if (opt.discover_only)
		return 0;

	if (!opt.have_range) {
		opt.lba_start = 0;
		opt.lba_count = tcapacity;
	} else if (tcapacity && opt.lba_start + opt.lba_count > tcapacity) {
		fprintf(stderr, "aoe-load: range exceeds capacity %llu\n",
			(unsigned long long)tcapacity);
		return 2;
	}
	int frame_sect = (io.mtu - 36) / 512;
	if (opt.sectors <= 0)
		opt.sectors = tmaxsect;
	if (opt.sectors > frame_sect) {
		fprintf(stderr, "aoe-load: %d sectors do not fit our MTU %d (max %d)\n", opt.sectors,
			io.mtu, frame_sect);
		return 2;
	}
	if (opt.sectors > 255 || opt.sectors < 1)
		usage();
	if (opt.sectors > tmaxsect)
		fprintf(stderr, "aoe-load: warning: %d sectors exceed the target's max %d\n",
			opt.sectors, tmaxsect);
	if (opt.lba_count < (uint64_t)opt.sectors) {
		fprintf(stderr, "aoe-load: LBA range smaller than one request\n");
		return 2;
	}
	qd = opt.qd;
	/* -L: the smallest buffer count times the number of exports (round robin
	 * keeps each export's share at about qd / COUNT) */
	if (!opt.force_qd && tbufcnt > 0 && qd > tbufcnt * opt.span)
		qd = tbufcnt * opt.span;
	if (opt.verbose && qd != opt.qd)
		fprintf(stderr, "aoe-load: queue depth %d capped to buffer count %d\n", opt.qd, qd);

	slots = calloc((size_t)qd, sizeof *slots);
	hist = calloc(HIST_N + 1, sizeof *hist);
	if (!slots || !hist) {
		perror("calloc");
		return 1;
	}
	/* Prefill every TX buffer's payload once, so a write only costs a header. */
	for (unsigned i = 0; i < pktio_tx_count(&io); i++) {
		uint8_t *b = pktio_tx_buf(&io, i);
		for (size_t k = 36; k < io.maxframe; k++)
			b[k] = (uint8_t)(k * 7 + 1);
	}

	if (opt.verify) {
		limit_mode = 1;
		chunks_total = opt.lba_count / opt.sectors;
		const char *names[2] = {"verify-write", "verify-read"};
		int rc = 0;
		for (int ph = 0; ph < 2; ph++) {
			reset_stats();
			phase_write = ph == 0;
			uint64_t t0 = now_ns();
			cpu_mark = cpu_seconds();
			phase_t0 = t0;
			measure_start = t0;
			measure_end = UINT64_MAX;
			run_phase(t0 + (uint64_t)(3600 * 1e9));
			double secs = (now_ns() - t0) / 1e9;
			print_json(secs, names[ph]);
			if (errors || chunks_done < chunks_total || interrupted)
				rc = 1;
			drain(50000000);
		}
		return rc;
	}

	phase_write = opt.write;
	cpu_mark = cpu_seconds();
	uint64_t t0 = now_ns();
	phase_t0 = t0;
	measure_start = t0 + (uint64_t)(opt.warmup * 1e9);
	measure_end = measure_start + (uint64_t)(opt.seconds * 1e9);
	run_phase(measure_end);
	uint64_t t1 = now_ns();
	if (ntpids && tcpu_t0 >= 0) {
		tcpu_t1 = target_ticks();
		tcpu_ns1 = t1;
	}
	if (t1 > measure_end)
		t1 = measure_end;
	double secs = t1 > measure_start ? (t1 - measure_start) / 1e9 : 0;
	print_json(secs, NULL);
	if (opt.verbose)
		fprintf(stderr, "aoe-load: rx %llu tx %llu\n", (unsigned long long)io.rx_frames,
			(unsigned long long)io.tx_frames);
	return 0;
}
