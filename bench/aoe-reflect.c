/*
 * aoe-reflect: a trivial AoE target that does no disk I/O at all.
 *
 * Answers query config (buffer count 64 by default, max sectors from the
 * MTU), IDENTIFY DEVICE, and every ATA read/write with success; reads carry
 * count*512 bytes of zeros. It is the ceiling a real target can approach on
 * this machine and shows whether the load generator is the bottleneck.
 *
 *   aoe-reflect -i IFACE [-s shelf] [-l slot] [-b bufcnt] [-c sectors]
 *               [-m ring|rxring|mmsg] [-B] [-M maxsectors] [-v]
 */
#include "aoe-pktio.h"

#include <getopt.h>
#include <signal.h>

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
		datalen = cnt * 512u;
		need_zero = 1;
		break;
	case 0x30:
	case 0x34:
		if (cnt > maxsect || len < 36u + cnt * 512u) {
			send_error(io, req, len, 2);
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
		"                   [-m ring|rxring|mmsg] [-B] [-M maxsectors] [-v]\n"
		"  -b  advertised buffer count (64)      -c capacity in sectors (2^31)\n"
		"  -m  I/O back end (ring)               -B busy-poll instead of ppoll()\n"
		"  -M  max sectors per request (default (MTU-36)/512)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *ifname = NULL;
	int mode = PKTIO_RXRING, busy = 0, c;
	while ((c = getopt(argc, argv, "i:s:l:b:c:m:BM:vh")) != -1) {
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
	if (!ifname)
		usage();

	struct pktio io;
	if (pktio_open(&io, ifname, mode, 4096, 2048, 8 << 20) < 0)
		return 1;
	int mtu_sect = (io.mtu - 36) / 512;
	if (maxsect <= 0 || maxsect > mtu_sect)
		maxsect = mtu_sect;
	if (maxsect > 255)
		maxsect = 255;

	dirty_n = pktio_tx_count(&io);
	dirty = calloc(dirty_n, 1);
	for (unsigned i = 0; i < dirty_n; i++)
		memset(pktio_tx_buf(&io, i), 0, io.maxframe);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	fprintf(stderr, "aoe-reflect: pid %d e%d.%d on %s mtu %d maxsect %d bufcnt %d mode %s%s\n",
		(int)getpid(), shelf, slot, ifname, io.mtu, maxsect, bufcnt,
		iomode_name(mode), busy ? " busy-poll" : "");

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
		pktio_flush(&io);
		if (!got && !busy)
			pktio_wait(&io, 200000000);
	}
	if (verbose)
		fprintf(stderr,
			"aoe-reflect: rx %llu tx %llu ata %llu cfg %llu other %llu bad %llu tx_full %llu tx_err %llu\n",
			(unsigned long long)io.rx_frames, (unsigned long long)io.tx_frames,
			(unsigned long long)n_ata, (unsigned long long)n_cfg,
			(unsigned long long)n_other, (unsigned long long)n_bad,
			(unsigned long long)io.tx_full, (unsigned long long)io.tx_errors);
	return 0;
}
