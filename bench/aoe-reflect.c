/*
 * aoe-reflect: a trivial AoE target that does no disk I/O at all.
 *
 * Answers query config (buffer count 64 by default, max sectors from the
 * MTU), IDENTIFY DEVICE, and every ATA read/write with success; reads carry
 * count*512 bytes of zeros. It is the ceiling a real target can approach on
 * this machine and shows whether the load generator is the bottleneck.
 *
 * With -f FILE it does real I/O instead: each read or write is one O_DIRECT
 * request on Linux AIO, submitted once per batch of frames. Writes are
 * O_DSYNC, as fio -y does it (stable when they complete; the kernel shares
 * the disk's cache flushes among those in flight), or with -g group
 * committed, as aoed's write-cache: false does it (a reply waits for an
 * fdatasync that started after its write completed, one in flight). A
 * reference for a durable target over this network on this disk, with
 * none of aoed's own work.
 *
 * -S NS adds NS of busy-waiting per request on the loop's thread, to see
 * what a target's own work per request costs on this machine.
 *
 *   aoe-reflect -i IFACE [-s shelf] [-l slot] [-b bufcnt] [-c sectors]
 *               [-f FILE [-g] [-S NS]] [-m ring|rxring|mmsg] [-B] [-M maxsectors] [-v]
 */
#include "aoe-pktio.h"

#include <fcntl.h>
#include <getopt.h>
#include <linux/aio_abi.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int shelf, slot, bufcnt = 64, maxsect, verbose;
static uint64_t capacity = 1ull << 31; /* sectors (1 TiB) */
static uint8_t config[1024];
static int nconfig;
static uint8_t *dirty; /* per TX buffer: data area may be non-zero */
static unsigned dirty_n;
static uint64_t n_ata, n_cfg, n_other, n_bad;

/* -f: one slot per request in flight; its buffer is the I/O's, aligned
 * for O_DIRECT, and it keeps the request's header for the reply. */
struct slot {
	struct iocb cb;
	uint8_t *buf;
	uint8_t req[36];
	unsigned datalen; /* bytes read into buf for the reply */
};
static int file_fd = -1, aio_efd = -1;
static aio_context_t aio_ctx;
static struct slot *slots;
static unsigned *free_slots, n_free, n_slots;
static struct iocb **pending; /* built this batch, not yet submitted */
static unsigned n_pending;
static uint64_t n_io_err, n_busy;
/* -S: CPU time to burn per request, half before its I/O, half before its reply. */
static uint64_t spin_ns;

/* Busy-waits half of spin_ns on this thread: a stand-in for a target's own work per request. */
static void spin_half(void)
{
	if (spin_ns == 0)
		return;
	uint64_t until = now_ns() + spin_ns / 2;
	while (now_ns() < until)
		;
}

static unsigned tx_index(struct pktio *io)
{
	return io->tx_ring ? io->tx_idx : (unsigned)io->scnt;
}

static void make_identify(uint8_t *d)
{
	uint16_t w[256];
	memset(w, 0, sizeof w);
	w[47] = 0x8000;
	w[49] = 0x0200;
	w[50] = 0x4000;
	w[83] = 0x5400 | (1 << 10) | (1 << 12) | (1 << 13);
	w[84] = 0x4000;
	w[86] = 0x1400 | (1 << 10) | (1 << 12) | (1 << 13);
	w[87] = 0x4000;
	w[93] = 0x400b;
	const char *model = "aoe-reflect bench target";
	const char *fw = "R1";
	char serial[21];
	snprintf(serial, sizeof serial, "refl%d.%d", shelf, slot);
	struct {
		int word, len;
		const char *s;
	} f[] = {{10, 20, serial}, {23, 8, fw}, {27, 40, model}};
	for (unsigned k = 0; k < sizeof f / sizeof f[0]; k++) {
		size_t sl = strlen(f[k].s);
		for (int i = 0; i < f[k].len; i++) {
			uint8_t c = i < (int)sl ? (uint8_t)f[k].s[i] : ' ';
			uint8_t *wp = (uint8_t *)&w[f[k].word + i / 2];
			wp[(i & 1) ^ 1] = c; /* bytes of each word swapped */
		}
	}
	uint64_t lba28 = capacity > 0x0FFFFFFF ? 0x0FFFFFFF : capacity;
	w[60] = lba28 & 0xffff;
	w[61] = (lba28 >> 16) & 0xffff;
	for (int i = 0; i < 4; i++)
		w[100 + i] = (capacity >> (16 * i)) & 0xffff;
	for (int i = 0; i < 256; i++) { /* little-endian words */
		d[2 * i] = w[i] & 0xff;
		d[2 * i + 1] = w[i] >> 8;
	}
}

static void fill_header(struct pktio *io, uint8_t *o, const uint8_t *req, uint8_t flags_extra)
{
	memcpy(o, req + 6, 6);
	memcpy(o + 6, io->mac, 6);
	o[12] = 0x88;
	o[13] = 0xA2;
	o[14] = 0x10 | 0x08 | flags_extra;
	o[15] = 0;
	put_be16(o + 16, (uint16_t)shelf);
	o[18] = (uint8_t)slot;
	o[19] = req[19];
	memcpy(o + 20, req + 20, 4);
}

static void send_error(struct pktio *io, const uint8_t *req, unsigned len, uint8_t code)
{
	uint8_t *o = pktio_tx_get(io);
	if (!o)
		return;
	unsigned idx = tx_index(io);
	unsigned n = len < 24 ? 24 : (len > io->maxframe ? (unsigned)io->maxframe : len);
	memcpy(o, req, n);
	fill_header(io, o, req, 0x04);
	o[15] = code;
	if (n > 36 && idx < dirty_n)
		dirty[idx] = 1;
	pktio_tx_commit(io, o, n);
}

static void config_reply(struct pktio *io, const uint8_t *req, unsigned len, int announce)
{
	uint8_t ccmd = announce ? 0 : (req[29] & 0x0f);
	uint16_t rlen = announce ? 0 : get_be16(req + 30);
	const uint8_t *rstr = req + 32;
	uint8_t eflag = 0, ecode = 0;
	if (!announce && ccmd != 0 && (rlen > 1024 || 32u + rlen > len))
		return;
	switch (ccmd) {
	case 0:
		break;
	case 1:
		if (rlen != nconfig || memcmp(rstr, config, rlen))
			return;
		break;
	case 2:
		if (rlen > nconfig || memcmp(rstr, config, rlen))
			return;
		break;
	case 3:
		if (nconfig && (nconfig != rlen || memcmp(config, rstr, rlen))) {
			eflag = 0x04;
			ecode = 4;
			break;
		}
		/* fall through */
	case 4:
		memcpy(config, rstr, rlen);
		nconfig = rlen;
		break;
	default:
		eflag = 0x04;
		ecode = 2;
	}
	uint8_t *o = pktio_tx_get(io);
	if (!o)
		return;
	unsigned idx = tx_index(io);
	if (announce) {
		memset(o, 0xff, 6);
		memcpy(o + 6, io->mac, 6);
		o[12] = 0x88;
		o[13] = 0xA2;
		o[14] = 0x18;
		o[15] = 0;
		put_be16(o + 16, (uint16_t)shelf);
		o[18] = (uint8_t)slot;
		o[19] = 1;
		memset(o + 20, 0, 4);
	} else {
		fill_header(io, o, req, eflag);
		o[15] = ecode;
	}
	put_be16(o + 24, (uint16_t)bufcnt);
	put_be16(o + 26, 0x4001);
	o[28] = (uint8_t)maxsect;
	o[29] = 0x10 | ccmd;
	put_be16(o + 30, (uint16_t)nconfig);
	memcpy(o + 32, config, nconfig);
	if (nconfig > 4 && idx < dirty_n)
		dirty[idx] = 1;
	pktio_tx_commit(io, o, 32 + nconfig);
	n_cfg++;
}

static void file_submit(struct pktio *io, const uint8_t *req, unsigned len, int write,
			unsigned cnt)
{
	uint64_t lba = 0;
	if (req[24] & 0x40) { /* LBA48 */
		for (int i = 5; i >= 0; i--)
			lba = lba << 8 | req[28 + i];
	} else {
		lba = (uint64_t)(req[31] & 0x0f) << 24 | (uint64_t)req[30] << 16 |
		      (uint64_t)req[29] << 8 | req[28];
	}
	if (lba + cnt > capacity) {
		send_error(io, req, len, 2);
		return;
	}
	if (!n_free) {
		n_busy++;
		send_error(io, req, len, 2);
		return;
	}
	spin_half();
	unsigned i = free_slots[--n_free];
	struct slot *sl = &slots[i];
	memcpy(sl->req, req, 36);
	memset(&sl->cb, 0, sizeof sl->cb);
	sl->cb.aio_data = i;
	sl->cb.aio_fildes = (uint32_t)file_fd;
	sl->cb.aio_buf = (uint64_t)(uintptr_t)sl->buf;
	sl->cb.aio_nbytes = cnt * 512u;
	sl->cb.aio_offset = (int64_t)(lba * 512);
	sl->cb.aio_flags = IOCB_FLAG_RESFD;
	sl->cb.aio_resfd = (uint32_t)aio_efd;
	if (write) {
		memcpy(sl->buf, req + 36, cnt * 512u);
		sl->cb.aio_lio_opcode = IOCB_CMD_PWRITE;
		sl->datalen = 0;
	} else {
		sl->cb.aio_lio_opcode = IOCB_CMD_PREAD;
		sl->datalen = cnt * 512u;
	}
	pending[n_pending++] = &sl->cb;
}

static void file_flush_pending(void)
{
	unsigned done = 0;
	while (done < n_pending) {
		long r = syscall(SYS_io_submit, aio_ctx, (long)(n_pending - done), pending + done);
		if (r <= 0) {
			perror("aoe-reflect: io_submit");
			exit(1);
		}
		done += (unsigned)r;
	}
	n_pending = 0;
}

/* Sends request slot i's reply (ok: done in full), and frees the slot. */
static void file_answer(struct pktio *io, unsigned i, int ok)
{
	struct slot *sl = &slots[i];
	spin_half();
	uint8_t *o = pktio_tx_get(io);
	unsigned idx = o ? tx_index(io) : 0;
	free_slots[n_free++] = i;
	if (!o)
		return;
	fill_header(io, o, sl->req, 0);
	o[24] = sl->req[24];
	memcpy(o + 28, sl->req + 28, 8);
	unsigned datalen = 0;
	if (!ok) {
		n_io_err++;
		o[25] = 0x04; /* ABRT */
		o[26] = 0;
		o[27] = 0x41; /* DRDY | ERR */
	} else {
		o[25] = 0;
		o[26] = 0;
		o[27] = 0x40;
		datalen = sl->datalen;
		memcpy(o + 36, sl->buf, datalen);
		if (datalen && idx < dirty_n)
			dirty[idx] = 1;
	}
	pktio_tx_commit(io, o, 36 + datalen);
	n_ata++;
}

/* -g: writes completed and waiting for a sync to start (waiting), and those
 * the sync in flight covers (covered); one fdatasync in flight at a time. */
#define SYNC_DATA UINT64_MAX
static int group;
static unsigned *waiting, n_waiting, *covered, n_covered;
static struct iocb sync_cb;
static int syncing;
static uint64_t n_syncs;

static void sync_start(void)
{
	unsigned *t = covered;
	covered = waiting;
	n_covered = n_waiting;
	waiting = t;
	n_waiting = 0;
	memset(&sync_cb, 0, sizeof sync_cb);
	sync_cb.aio_data = SYNC_DATA;
	sync_cb.aio_fildes = (uint32_t)file_fd;
	sync_cb.aio_lio_opcode = IOCB_CMD_FDSYNC;
	sync_cb.aio_flags = IOCB_FLAG_RESFD;
	sync_cb.aio_resfd = (uint32_t)aio_efd;
	struct iocb *p = &sync_cb;
	if (syscall(SYS_io_submit, aio_ctx, 1L, &p) != 1) {
		perror("aoe-reflect: io_submit fdatasync");
		exit(1);
	}
	syncing = 1;
	n_syncs++;
}

/* Answers every completed request (with -g, writes once a sync started
 * after they completed is done); returns how many events it saw. */
static unsigned file_reap(struct pktio *io)
{
	struct io_event ev[64];
	struct timespec zero = {0, 0};
	uint64_t tick;
	unsigned total = 0;
	if (read(aio_efd, &tick, sizeof tick) < 0 && errno != EAGAIN)
		perror("aoe-reflect: eventfd");
	for (;;) {
		long n = syscall(SYS_io_getevents, aio_ctx, 0L, 64L, ev, &zero);
		if (n <= 0)
			break;
		for (long k = 0; k < n; k++) {
			if (ev[k].data == SYNC_DATA) {
				for (unsigned j = 0; j < n_covered; j++)
					file_answer(io, covered[j], ev[k].res == 0);
				n_covered = 0;
				syncing = 0;
				continue;
			}
			unsigned i = (unsigned)ev[k].data;
			int ok = ev[k].res == (int64_t)slots[i].cb.aio_nbytes;
			if (group && ok && slots[i].cb.aio_lio_opcode == IOCB_CMD_PWRITE)
				waiting[n_waiting++] = i;
			else
				file_answer(io, i, ok);
		}
		if (!syncing && n_waiting)
			sync_start();
		total += (unsigned)n;
	}
	return total;
}

static void file_open(const char *path, size_t maxframe)
{
	file_fd = open(path, O_RDWR | O_DIRECT | (group ? 0 : O_DSYNC));
	if (file_fd < 0) {
		fprintf(stderr, "aoe-reflect: open %s: %s\n", path, strerror(errno));
		exit(1);
	}
	struct stat st;
	uint64_t bytes = 0;
	if (fstat(file_fd, &st) == 0 && S_ISREG(st.st_mode))
		bytes = (uint64_t)st.st_size;
	else if (ioctl(file_fd, BLKGETSIZE64, &bytes) < 0)
		bytes = 0;
	if (bytes && capacity == 1ull << 31)
		capacity = bytes / 512;
	n_slots = (unsigned)bufcnt * 2;
	slots = calloc(n_slots, sizeof *slots);
	free_slots = calloc(n_slots, sizeof *free_slots);
	pending = calloc(n_slots, sizeof *pending);
	waiting = calloc(n_slots, sizeof *waiting);
	covered = calloc(n_slots, sizeof *covered);
	for (unsigned i = 0; i < n_slots; i++) {
		if (posix_memalign((void **)&slots[i].buf, 4096, maxframe)) {
			fprintf(stderr, "aoe-reflect: out of memory\n");
			exit(1);
		}
		free_slots[n_free++] = n_slots - 1 - i;
	}
	aio_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (aio_efd < 0 || syscall(SYS_io_setup, n_slots + 1, &aio_ctx) < 0) {
		perror("aoe-reflect: eventfd/io_setup");
		exit(1);
	}
}

static void ata_reply(struct pktio *io, const uint8_t *req, unsigned len)
{
	if (len < 36) {
		n_bad++;
		return;
	}
	uint8_t aflags = req[24], cnt = req[26], cmd = req[27];
	unsigned datalen = 0;
	uint8_t status = 0x40, err = 0, rcnt = 0;
	int need_zero = 0, identify = 0;
	switch (cmd) {
	case 0x20:
	case 0x24:
		if (cnt > maxsect || 36u + cnt * 512u > io->maxframe) {
			send_error(io, req, len, 2);
			return;
		}
		if (file_fd >= 0) {
			file_submit(io, req, len, 0, cnt);
			return;
		}
		datalen = cnt * 512u;
		need_zero = 1;
		break;
	case 0x30:
	case 0x34:
		if (cnt > maxsect || len < 36u + cnt * 512u) {
			send_error(io, req, len, 2);
			return;
		}
		if (file_fd >= 0) {
			file_submit(io, req, len, 1, cnt);
			return;
		}
		break;
	case 0xEC:
		identify = 1;
		datalen = 512;
		break;
	case 0xE5:
		rcnt = 0xff;
		break;
	default:
		break; /* flush and anything else: success */
	}
	(void)aflags;
	uint8_t *o = pktio_tx_get(io);
	if (!o)
		return;
	unsigned idx = tx_index(io);
	fill_header(io, o, req, 0);
	o[24] = req[24];
	o[25] = err;
	o[26] = rcnt;
	o[27] = status;
	memcpy(o + 28, req + 28, 8);
	if (identify) {
		make_identify(o + 36);
		if (idx < dirty_n)
			dirty[idx] = 1;
	} else if (need_zero && idx < dirty_n && dirty[idx]) {
		memset(o + 36, 0, io->maxframe - 36);
		dirty[idx] = 0;
	}
	pktio_tx_commit(io, o, 36 + datalen);
	n_ata++;
}

static void handle(struct pktio *io, const uint8_t *f, unsigned len)
{
	if (len < 24 || f[12] != 0x88 || f[13] != 0xA2)
		return;
	if ((f[14] >> 4) != 1 || (f[14] & 0x08))
		return; /* wrong version, or a response */
	uint16_t sh = get_be16(f + 16);
	uint8_t sl = f[18];
	if ((sh != shelf && sh != 0xFFFF) || (sl != slot && sl != 0xFF))
		return;
	switch (f[19]) {
	case 0:
		ata_reply(io, f, len);
		break;
	case 1:
		if (len >= 32)
			config_reply(io, f, len, 0);
		break;
	case 2: { /* MAC mask list: we keep none; reply with an empty list */
		uint8_t *o = pktio_tx_get(io);
		if (!o)
			return;
		fill_header(io, o, f, 0);
		o[24] = 0;
		o[25] = len > 25 ? f[25] : 0;
		o[26] = 0;
		o[27] = 0;
		pktio_tx_commit(io, o, 28);
		n_other++;
		break;
	}
	case 3: { /* reserve/release: always an empty list */
		uint8_t *o = pktio_tx_get(io);
		if (!o)
			return;
		fill_header(io, o, f, 0);
		o[24] = len > 24 ? f[24] : 0;
		o[25] = 0;
		pktio_tx_commit(io, o, 26);
		n_other++;
		break;
	}
	default:
		send_error(io, f, len, 1);
		n_other++;
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: aoe-reflect -i IFACE [-s shelf] [-l slot] [-b bufcnt] [-c sectors]\n"
		"                   [-f FILE [-g] [-S NS]] [-m ring|rxring|mmsg] [-B] [-M maxsectors] [-v]\n"
		"  -b  advertised buffer count (64)      -c capacity in sectors (2^31)\n"
		"  -f  read and write FILE, O_DIRECT|O_DSYNC on Linux AIO (capacity: its size)\n"
		"  -g  with -f: group commit instead of O_DSYNC (one fdatasync in flight)\n"
		"  -S  with -f: busy-wait NS per request on this thread (half before its I/O, half before its reply)\n"
		"  -m  I/O back end (ring)               -B busy-poll instead of ppoll()\n"
		"  -M  max sectors per request (default (MTU-36)/512)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *ifname = NULL, *path = NULL;
	int mode = PKTIO_RXRING, busy = 0, c;
	while ((c = getopt(argc, argv, "i:s:l:b:c:f:gS:m:BM:vh")) != -1) {
		switch (c) {
		case 'i':
			ifname = optarg;
			break;
		case 's':
			shelf = (int)strtol(optarg, NULL, 0);
			break;
		case 'l':
			slot = (int)strtol(optarg, NULL, 0);
			break;
		case 'b':
			bufcnt = (int)strtol(optarg, NULL, 0);
			break;
		case 'c':
			capacity = strtoull(optarg, NULL, 0);
			break;
		case 'f':
			path = optarg;
			break;
		case 'g':
			group = 1;
			break;
		case 'S':
			spin_ns = strtoull(optarg, NULL, 0);
			break;
		case 'm':
			mode = parse_iomode(optarg);
			break;
		case 'B':
			busy = 1;
			break;
		case 'M':
			maxsect = (int)strtol(optarg, NULL, 0);
			break;
		case 'v':
			verbose = 1;
			break;
		default:
			usage();
		}
	}
	if (!ifname || ((group || spin_ns) && !path))
		usage();

	struct pktio io;
	if (pktio_open(&io, ifname, mode, 4096, 2048, 8 << 20) < 0)
		return 1;
	int mtu_sect = (io.mtu - 36) / 512;
	if (maxsect <= 0 || maxsect > mtu_sect)
		maxsect = mtu_sect;
	if (maxsect > 255)
		maxsect = 255;

	if (path)
		file_open(path, io.maxframe);
	dirty_n = pktio_tx_count(&io);
	dirty = calloc(dirty_n, 1);
	for (unsigned i = 0; i < dirty_n; i++)
		memset(pktio_tx_buf(&io, i), 0, io.maxframe);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	fprintf(stderr, "aoe-reflect: pid %d e%d.%d on %s mtu %d maxsect %d bufcnt %d mode %s%s%s%s\n",
		(int)getpid(), shelf, slot, ifname, io.mtu, maxsect, bufcnt,
		iomode_name(mode), busy ? " busy-poll" : "", path ? " file " : "", path ? path : "");

	config_reply(&io, NULL, 0, 1); /* announce */
	pktio_flush(&io);

	while (!stop) {
		unsigned len;
		uint8_t *f;
		int got = 0;
		while ((f = pktio_rx_next(&io, &len)) != NULL) {
			handle(&io, f, len);
			pktio_rx_release(&io);
			if (++got >= 256)
				break;
		}
		unsigned reaped = 0;
		if (file_fd >= 0) {
			file_flush_pending();
			reaped = file_reap(&io);
		}
		pktio_flush(&io);
		if (!got && !reaped && !busy)
			pktio_wait2(&io, aio_efd, 200000000);
	}
	if (verbose)
		fprintf(stderr,
			"aoe-reflect: rx %llu tx %llu ata %llu cfg %llu other %llu bad %llu tx_full %llu tx_err %llu"
			" io_err %llu slots_full %llu syncs %llu\n",
			(unsigned long long)io.rx_frames, (unsigned long long)io.tx_frames,
			(unsigned long long)n_ata, (unsigned long long)n_cfg,
			(unsigned long long)n_other, (unsigned long long)n_bad,
			(unsigned long long)io.tx_full, (unsigned long long)io.tx_errors,
			(unsigned long long)n_io_err, (unsigned long long)n_busy,
			(unsigned long long)n_syncs);
	return 0;
}
