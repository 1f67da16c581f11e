/*
 * aoe-pktio.h: raw AoE frame I/O on an AF_PACKET socket, shared by the
 * benchmark client (aoe-load) and the reflector (aoe-reflect).
 *
 * Two back ends:
 *   ring: PACKET_MMAP TPACKET_V2 RX ring + TX ring; a whole batch of frames
 *         costs one send() and no copies through the socket API.
 *   mmsg: recvmmsg()/sendmmsg() with batches of PKTIO_BATCH frames.
 *
 * TX buffers keep their contents between uses (ring frames and mmsg buffers
 * are reused round robin), so a caller may prefill payload once and then
 * write only the 36-byte header of each frame.
 */
#ifndef AOE_PKTIO_H
#define AOE_PKTIO_H

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define AOE_ETHERTYPE 0x88A2
#define AOE_MINFRAME 60
#define PKTIO_BATCH 64

/* I/O modes: which directions use a PACKET_MMAP ring (the others use
 * recvmmsg/sendmmsg). */
enum { PKTIO_RING = 0, PKTIO_MMSG = 1, PKTIO_RXRING = 2 };

struct pktio {
	int fd;
	int ifindex;
	int mtu;
	int mode;
	int rx_ring, tx_ring;
	unsigned char mac[6];
	size_t maxframe; /* largest frame we can send/receive (MTU + 14) */

	/* ring mode */
	uint8_t *map;
	size_t map_len;
	unsigned frame_sz, buf_sz, rx_nr, tx_nr;
	unsigned frames_per_block, block_sz;
	uint8_t *rx_base, *tx_base;
	unsigned rx_idx, tx_idx;
	int tx_dirty;

	/* mmsg mode */
	struct mmsghdr rmsg[PKTIO_BATCH], smsg[PKTIO_BATCH];
	struct iovec riov[PKTIO_BATCH], siov[PKTIO_BATCH];
	uint8_t *rbufs, *sbufs;
	int rcnt, rpos, scnt;

	/* counters */
	uint64_t rx_frames, tx_frames, tx_full, tx_errors;
};

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint8_t *pktio_frame(struct pktio *io, uint8_t *base, unsigned i)
{
	unsigned b = i / io->frames_per_block, f = i % io->frames_per_block;
	return base + (size_t)b * io->block_sz + (size_t)f * io->frame_sz;
}

static int pktio_ifinfo(struct pktio *io, const char *ifname)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
	if (ioctl(io->fd, SIOCGIFINDEX, &ifr) < 0) {
		fprintf(stderr, "SIOCGIFINDEX %s: %s\n", ifname, strerror(errno));
		return -1;
	}
	io->ifindex = ifr.ifr_ifindex;
	if (ioctl(io->fd, SIOCGIFHWADDR, &ifr) < 0) {
		perror("SIOCGIFHWADDR");
		return -1;
	}
	memcpy(io->mac, ifr.ifr_hwaddr.sa_data, 6);
	if (ioctl(io->fd, SIOCGIFMTU, &ifr) < 0) {
		perror("SIOCGIFMTU");
		return -1;
	}
	io->mtu = ifr.ifr_mtu;
	return 0;
}

/*
 * rx_frames/tx_frames: ring sizes in frames (ring mode) - rounded up to
 * whole blocks. sockbuf: SO_RCVBUF/SO_SNDBUF (forced) for mmsg mode.
 */
static int pktio_open(struct pktio *io, const char *ifname, int mode,
		      unsigned rx_frames, unsigned tx_frames, int sockbuf)
{
	memset(io, 0, sizeof *io);
	io->mode = mode;
	io->rx_ring = mode == PKTIO_RING || mode == PKTIO_RXRING;
	io->tx_ring = mode == PKTIO_RING;
	io->fd = socket(AF_PACKET, SOCK_RAW, 0); /* nothing arrives before bind() names the interface */
	if (io->fd < 0) {
		perror("socket(AF_PACKET)");
		return -1;
	}
	if (pktio_ifinfo(io, ifname) < 0)
		return -1;
	io->maxframe = (size_t)io->mtu + 14;

	int one = 1;
	/* Skip the qdisc layer (veth uses noqueue anyway). */
	setsockopt(io->fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
	/* We never want to see our own frames. */
	setsockopt(io->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);

	if (sockbuf > 0) {
		if (setsockopt(io->fd, SOL_SOCKET, SO_RCVBUFFORCE, &sockbuf, sizeof sockbuf) < 0)
			setsockopt(io->fd, SOL_SOCKET, SO_RCVBUF, &sockbuf, sizeof sockbuf);
		if (setsockopt(io->fd, SOL_SOCKET, SO_SNDBUFFORCE, &sockbuf, sizeof sockbuf) < 0)
			setsockopt(io->fd, SOL_SOCKET, SO_SNDBUF, &sockbuf, sizeof sockbuf);
	}
	if (io->rx_ring || io->tx_ring) {
		int ver = TPACKET_V2;
		if (setsockopt(io->fd, SOL_PACKET, PACKET_VERSION, &ver, sizeof ver) < 0) {
			perror("PACKET_VERSION");
			return -1;
		}
		/* Frame: tpacket2_hdr + sockaddr_ll, MAC header at offset 66,
		 * data starts at 80 on receive; 32 on transmit. */
		unsigned need = (unsigned)(TPACKET_ALIGN(TPACKET2_HDRLEN + 16) + io->maxframe + 64);
		unsigned fs = 2048;
		while (fs < need)
			fs += 2048;
		io->frame_sz = fs;
		io->block_sz = 1u << 17; /* 128 KiB */
		while (io->block_sz < fs)
			io->block_sz <<= 1;
		io->frames_per_block = io->block_sz / fs;
		unsigned rx_blocks = (rx_frames + io->frames_per_block - 1) / io->frames_per_block;
		unsigned tx_blocks = (tx_frames + io->frames_per_block - 1) / io->frames_per_block;
		if (!io->rx_ring)
			rx_blocks = 0;
		if (!io->tx_ring)
			tx_blocks = 0;
		io->rx_nr = rx_blocks * io->frames_per_block;
		io->tx_nr = tx_blocks * io->frames_per_block;

		struct tpacket_req req;
		memset(&req, 0, sizeof req);
		req.tp_block_size = io->block_sz;
		req.tp_frame_size = io->frame_sz;
		req.tp_block_nr = rx_blocks;
		req.tp_frame_nr = io->rx_nr;
		if (rx_blocks && setsockopt(io->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) {
			perror("PACKET_RX_RING");
			return -1;
		}
		req.tp_block_nr = tx_blocks;
		req.tp_frame_nr = io->tx_nr;
		if (tx_blocks && setsockopt(io->fd, SOL_PACKET, PACKET_TX_RING, &req, sizeof req) < 0) {
			perror("PACKET_TX_RING");
			return -1;
		}
		io->map_len = (size_t)(rx_blocks + tx_blocks) * io->block_sz;
		io->map = mmap(NULL, io->map_len, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_LOCKED | MAP_POPULATE, io->fd, 0);
		if (io->map == MAP_FAILED) {
			io->map = mmap(NULL, io->map_len, PROT_READ | PROT_WRITE,
				       MAP_SHARED, io->fd, 0);
			if (io->map == MAP_FAILED) {
				perror("mmap ring");
				return -1;
			}
		}
		io->rx_base = io->map;
		io->tx_base = io->map + (size_t)rx_blocks * io->block_sz;
	}
	if (!io->rx_ring || !io->tx_ring) {
		size_t bsz = (io->maxframe + 63) & ~(size_t)63;
		io->buf_sz = (unsigned)bsz;
		io->rbufs = aligned_alloc(4096, bsz * PKTIO_BATCH);
		io->sbufs = aligned_alloc(4096, bsz * PKTIO_BATCH);
		if (!io->rbufs || !io->sbufs) {
			perror("malloc");
			return -1;
		}
		memset(io->rbufs, 0, bsz * PKTIO_BATCH);
		memset(io->sbufs, 0, bsz * PKTIO_BATCH);
		for (int i = 0; i < PKTIO_BATCH; i++) {
			io->riov[i].iov_base = io->rbufs + bsz * i;
			io->riov[i].iov_len = bsz;
			io->rmsg[i].msg_hdr.msg_iov = &io->riov[i];
			io->rmsg[i].msg_hdr.msg_iovlen = 1;
			io->siov[i].iov_base = io->sbufs + bsz * i;
			io->smsg[i].msg_hdr.msg_iov = &io->siov[i];
			io->smsg[i].msg_hdr.msg_iovlen = 1;
		}
	}

	struct sockaddr_ll sll;
	memset(&sll, 0, sizeof sll);
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(AOE_ETHERTYPE);
	sll.sll_ifindex = io->ifindex;
	if (bind(io->fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
		perror("bind");
		return -1;
	}
	return 0;
}

/* Number of TX buffers (for prefilling payloads). */
static inline unsigned pktio_tx_count(struct pktio *io)
{
	return io->tx_ring ? io->tx_nr : PKTIO_BATCH;
}

/* Data pointer of TX buffer i (for prefilling). */
static inline uint8_t *pktio_tx_buf(struct pktio *io, unsigned i)
{
	if (io->tx_ring)
		return pktio_frame(io, io->tx_base, i) + TPACKET2_HDRLEN - sizeof(struct sockaddr_ll);
	return io->sbufs + (size_t)io->buf_sz * i;
}

/* ---- receive ---- */

/* Returns the next received frame or NULL; call pktio_rx_release() after. */
static inline uint8_t *pktio_rx_next(struct pktio *io, unsigned *len)
{
	if (io->rx_ring) {
		struct tpacket2_hdr *h = (struct tpacket2_hdr *)pktio_frame(io, io->rx_base, io->rx_idx);
		uint32_t st = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
		if (!(st & TP_STATUS_USER))
			return NULL;
		*len = h->tp_snaplen;
		return (uint8_t *)h + h->tp_mac;
	}
	if (io->rpos >= io->rcnt) {
		int n = recvmmsg(io->fd, io->rmsg, PKTIO_BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return NULL;
		io->rcnt = n;
		io->rpos = 0;
	}
	*len = io->rmsg[io->rpos].msg_len;
	return io->riov[io->rpos].iov_base;
}

static inline void pktio_rx_release(struct pktio *io)
{
	io->rx_frames++;
	if (io->rx_ring) {
		struct tpacket2_hdr *h = (struct tpacket2_hdr *)pktio_frame(io, io->rx_base, io->rx_idx);
		__atomic_store_n(&h->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
		if (++io->rx_idx == io->rx_nr)
			io->rx_idx = 0;
	} else {
		io->rpos++;
	}
}

/* ---- transmit ---- */

static inline void pktio_flush(struct pktio *io);

/*
 * Returns a buffer for the next frame to send (contents as left by the last
 * use of this buffer), or NULL if the ring is full of frames still owned by
 * the kernel. Finish with pktio_tx_commit().
 */
static inline uint8_t *pktio_tx_get(struct pktio *io)
{
	if (io->tx_ring) {
		struct tpacket2_hdr *h = (struct tpacket2_hdr *)pktio_frame(io, io->tx_base, io->tx_idx);
		uint32_t st = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
		if (st != TP_STATUS_AVAILABLE) {
			if (st & TP_STATUS_WRONG_FORMAT) {
				io->tx_errors++;
				__atomic_store_n(&h->tp_status, TP_STATUS_AVAILABLE, __ATOMIC_RELEASE);
			} else {
				pktio_flush(io);
				for (int spin = 0; spin < 2000; spin++) {
					st = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
					if (st == TP_STATUS_AVAILABLE)
						break;
					if (spin % 64 == 63) {
						io->tx_dirty = 1;
						pktio_flush(io);
					}
				}
				if (st != TP_STATUS_AVAILABLE) {
					io->tx_full++;
					return NULL;
				}
			}
		}
		return (uint8_t *)h + TPACKET2_HDRLEN - sizeof(struct sockaddr_ll);
	}
	if (io->scnt >= PKTIO_BATCH)
		pktio_flush(io);
	return io->sbufs + (size_t)io->buf_sz * io->scnt;
}

static inline void pktio_tx_commit(struct pktio *io, uint8_t *buf, unsigned len)
{
	if (len < AOE_MINFRAME) {
		memset(buf + len, 0, AOE_MINFRAME - len);
		len = AOE_MINFRAME;
	}
	io->tx_frames++;
	if (io->tx_ring) {
		struct tpacket2_hdr *h = (struct tpacket2_hdr *)pktio_frame(io, io->tx_base, io->tx_idx);
		h->tp_len = len;
		__atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
		if (++io->tx_idx == io->tx_nr)
			io->tx_idx = 0;
		io->tx_dirty = 1;
	} else {
		io->siov[io->scnt].iov_len = len;
		io->scnt++;
	}
}

static inline void pktio_flush(struct pktio *io)
{
	if (io->tx_ring) {
		if (!io->tx_dirty)
			return;
		ssize_t r = send(io->fd, NULL, 0, MSG_DONTWAIT);
		if (r >= 0)
			io->tx_dirty = 0;
		else if (errno != EAGAIN && errno != ENOBUFS && errno != EINTR)
			io->tx_errors++;
		return;
	}
	int off = 0;
	while (off < io->scnt) {
		/* Blocking: waits for socket buffer space instead of dropping. */
		int n = sendmmsg(io->fd, io->smsg + off, io->scnt - off, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOBUFS || errno == EAGAIN) {
				/* device queue full: the frame is lost, like on a wire */
				io->tx_errors++;
				off++;
				continue;
			}
			io->tx_errors++;
			break;
		}
		off += n;
	}
	io->scnt = 0;
}

/* Wait until a frame may be readable, up to timeout_ns (<0: forever). */
static inline int pktio_wait(struct pktio *io, int64_t timeout_ns)
{
	struct pollfd p = {.fd = io->fd, .events = POLLIN};
	struct timespec ts, *tsp = NULL;
	if (timeout_ns >= 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
		tsp = &ts;
	}
	return ppoll(&p, 1, tsp, NULL);
}

/* The same, or until fd2 (if >= 0) is readable. */
static inline int pktio_wait2(struct pktio *io, int fd2, int64_t timeout_ns)
{
	struct pollfd p[2] = {{.fd = io->fd, .events = POLLIN}, {.fd = fd2, .events = POLLIN}};
	struct timespec ts = {timeout_ns / 1000000000, timeout_ns % 1000000000};
	return ppoll(p, fd2 >= 0 ? 2 : 1, &ts, NULL);
}

static inline void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v;
}
static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}
static inline uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int parse_iomode(const char *s)
{
	if (!strcmp(s, "ring"))
		return PKTIO_RING;
	if (!strcmp(s, "mmsg"))
		return PKTIO_MMSG;
	if (!strcmp(s, "rxring"))
		return PKTIO_RXRING;
	fprintf(stderr, "unknown I/O mode %s (ring|rxring|mmsg)\n", s);
	exit(2);
}

static const char *iomode_name(int m)
{
	return m == PKTIO_RING ? "ring" : m == PKTIO_RXRING ? "rxring" : "mmsg";
}

#endif
