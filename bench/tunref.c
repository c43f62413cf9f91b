/*
 * tunref: the "TUN ceiling" reference for scripts/bench.
 *
 * The least a user-space DNAT on lab's TUN design can do: a multi-queue TUN
 * with IFF_VNET_HDR and checksum/segmentation offload, one thread per queue
 * doing a blocking read, a rewrite of one VIP to one backend address (and
 * the backend's replies back to the VIP), and a write. No service lookup, no
 * connection tracking, no ports changed. Whatever lab's NAT does beyond
 * this is what the benchmark's "lab / ceiling" ratio prices.
 *
 * usage: tunref IFNAME QUEUES VIP BACKEND
 * Creates IFNAME (not persistent: it goes when tunref exits); the caller
 * brings it up and routes the VIP and the replies into it. SIGTERM/SIGINT
 * end it. Prints per-queue packet counts on exit.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define VNET 10
#define MAXQ 16

static uint32_t vip, backend; /* network order */
static volatile sig_atomic_t done;
static unsigned long long counts[MAXQ];

/* Fold a 32-bit one's-complement accumulator to 16 bits. */
static uint16_t fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

/* RFC 1624 eqn. 3 for a 32-bit field: HC' = ~(~HC + ~m + m'). */
static uint16_t csum_full(uint16_t hc, uint32_t old, uint32_t new)
{
	uint32_t s = (uint16_t)~ntohs(hc);
	s += (uint16_t)~(ntohl(old) >> 16) + (uint16_t)~(ntohl(old) & 0xffff);
	s += (ntohl(new) >> 16) + (ntohl(new) & 0xffff);
	return htons((uint16_t)~fold(s));
}

/* A NEEDS_CSUM partial sum (pseudo-header, not complemented): S' = S + ~m + m'. */
static uint16_t csum_partial(uint16_t ps, uint32_t old, uint32_t new)
{
	uint32_t s = ntohs(ps);
	s += (uint16_t)~(ntohl(old) >> 16) + (uint16_t)~(ntohl(old) & 0xffff);
	s += (ntohl(new) >> 16) + (ntohl(new) & 0xffff);
	return htons(fold(s));
}

static void rewrite(unsigned char *b, ssize_t n)
{
	if (n < VNET + 20)
		return;
	struct virtio_net_hdr *h = (struct virtio_net_hdr *)b;
	unsigned char *ip = b + VNET;
	if ((ip[0] >> 4) != 4)
		return;
	int ihl = (ip[0] & 15) * 4;
	uint32_t src, dst, old, new;
	int at;
	memcpy(&src, ip + 12, 4);
	memcpy(&dst, ip + 16, 4);
	if (dst == vip) {
		at = 16, old = vip, new = backend;
	} else if (src == backend) {
		at = 12, old = backend, new = vip;
	} else {
		return;
	}
	uint16_t c;
	memcpy(&c, ip + 10, 2);
	c = csum_full(c, old, new);
	memcpy(ip + 10, &c, 2);
	memcpy(ip + at, &new, 4);
	int frag = (ntohs(*(uint16_t *)(ip + 6)) & 0x1fff) != 0;
	int off = ip[9] == 6 ? 16 : ip[9] == 17 ? 6 : -1;
	if (off < 0 || frag || n < VNET + ihl + off + 2)
		return;
	unsigned char *l4c = ip + ihl + off;
	memcpy(&c, l4c, 2);
	if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
		c = csum_partial(c, old, new);
	else if (!(ip[9] == 17 && c == 0)) {
		c = csum_full(c, old, new);
		if (ip[9] == 17 && c == 0)
			c = 0xffff;
	}
	memcpy(l4c, &c, 2);
}

struct q {
	int fd, i;
};

static void *queue(void *arg)
{
	struct q *q = arg;
	static __thread unsigned char buf[65536 + 64];
	for (;;) {
		ssize_t n = read(q->fd, buf, sizeof buf);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			perror("read");
			return NULL;
		}
		rewrite(buf, n);
		/* A write error (full ring, no route) drops the packet, as the
		 * kernel would. */
		if (write(q->fd, buf, n) >= 0)
			counts[q->i]++;
	}
}

static int open_queue(const char *name)
{
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE;
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		close(fd);
		return -1;
	}
	unsigned off = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
#ifdef TUN_F_USO4
	/* UDP segmentation offload needs Linux 6.2; fall back without it. */
	if (ioctl(fd, TUNSETOFFLOAD, off | TUN_F_USO4 | TUN_F_USO6) == 0)
		return fd;
#endif
	if (ioctl(fd, TUNSETOFFLOAD, off) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void stop(int sig)
{
	(void)sig;
	done = 1;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s IFNAME QUEUES VIP BACKEND\n", argv[0]);
		return 2;
	}
	int nq = atoi(argv[2]);
	if (nq < 1 || nq > MAXQ || inet_pton(AF_INET, argv[3], &vip) != 1 ||
	    inet_pton(AF_INET, argv[4], &backend) != 1) {
		fprintf(stderr, "bad arguments\n");
		return 2;
	}
	static struct q qs[MAXQ];
	for (int i = 0; i < nq; i++) {
		qs[i].i = i;
		qs[i].fd = open_queue(argv[1]);
		if (qs[i].fd < 0) {
			perror("tun");
			return 1;
		}
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* Queue threads never take the signals; main waits for them. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (int i = 0; i < nq; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, queue, &qs[i]) != 0) {
			perror("pthread_create");
			return 1;
		}
		pthread_detach(t);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	printf("ready\n");
	fflush(stdout);
	while (!done)
		pause();
	for (int i = 0; i < nq; i++)
		fprintf(stderr, "queue %d: %llu packets\n", i, counts[i]);
	return 0;
}
