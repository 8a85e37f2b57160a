/*
 * net: the few network steps on a container's start path, in the spawnctl
 * process itself (linked into the shared object with nsh.c and shift.c, not
 * into the supervisor). Everything else about networks is TypeScript
 * (src/net/); these are here because `run -n` waits for them, and a cold
 * JavaScript process pays for every function it runs the first time.
 *
 *   nsh_siphash24      SipHash-2-4, for names and MAC addresses
 *   nsh_veth           one RTM_NEWLINK that makes a veth pair, its peer
 *                      directly in another network namespace
 *   nsh_udp_on_device  a UDP socket bound to a port on one link (DHCP)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

/* ---- SipHash-2-4 (Aumasson, Bernstein) ---- */

static inline uint64_t rotl64(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

static inline uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#define SIPROUND                                                         \
	do {                                                             \
		v0 += v1; v1 = rotl64(v1, 13); v1 ^= v0; v0 = rotl64(v0, 32); \
		v2 += v3; v3 = rotl64(v3, 16); v3 ^= v2;                 \
		v0 += v3; v3 = rotl64(v3, 21); v3 ^= v0;                 \
		v2 += v1; v1 = rotl64(v1, 17); v1 ^= v2; v2 = rotl64(v2, 32); \
	} while (0)

/* (in, len, key[16], out[8]): the 64-bit hash, little-endian */
void nsh_siphash24(const uint8_t *in, uint64_t len, const uint8_t *key, uint8_t *out)
{
	uint64_t k0 = le64(key), k1 = le64(key + 8);
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
	uint64_t full = len & ~(uint64_t)7;
	for (uint64_t i = 0; i < full; i += 8) {
		uint64_t m = le64(in + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	uint64_t b = len << 56;
	for (uint64_t i = 0; i < (len & 7); i++)
		b |= (uint64_t)in[full + i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	uint64_t h = v0 ^ v1 ^ v2 ^ v3;
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(h >> (8 * i));
}

/* ---- rtnetlink: one request, one acknowledgement ---- */

struct req {
	uint8_t buf[1024];
	size_t len;
};

static struct rtattr *attr(struct req *r, unsigned short type, const void *data, size_t len)
{
	struct rtattr *a = (struct rtattr *)(r->buf + r->len);
	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(a), data, len);
	r->len += RTA_ALIGN(a->rta_len);
	return a;
}

/* a nest: opened here, closed by end() once its contents are added */
static size_t nest(struct req *r, unsigned short type)
{
	size_t at = r->len;
	attr(r, type, NULL, 0);
	return at;
}

static void end(struct req *r, size_t at)
{
	((struct rtattr *)(r->buf + at))->rta_len = (unsigned short)(r->len - at);
}

static void str(struct req *r, unsigned short type, const char *s)
{
	attr(r, type, s, strlen(s) + 1);
}

#define SEQ 0x6e736801u

/* send the request in r (a struct nlmsghdr first) on the rtnetlink socket
 * sock (or on a new one here, when sock < 0) and wait for the kernel's
 * answer: 0 or -errno */
static int talk(struct req *r, int sock)
{
	int fd = sock >= 0 ? sock : socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	int ret;
	if (sendto(fd, r->buf, r->len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
		ret = -errno;
		goto out;
	}
	for (;;) {
		union { uint8_t b[4096]; struct nlmsghdr align; } in;
		ssize_t n = recv(fd, in.b, sizeof(in.b), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto out;
		}
		for (struct nlmsghdr *m = &in.align; NLMSG_OK(m, (size_t)n); m = NLMSG_NEXT(m, n)) {
			if (m->nlmsg_seq != SEQ || m->nlmsg_type != NLMSG_ERROR)
				continue;
			if (m->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
				ret = -EBADMSG;
				goto out;
			}
			ret = ((struct nlmsgerr *)NLMSG_DATA(m))->error;
			goto out;
		}
	}
out:
	if (fd != sock)
		close(fd);
	return ret;
}

/* "xx:xx:xx:xx:xx:xx" into 6 bytes: 0 or -EINVAL */
static int parse_mac(const char *s, uint8_t *out)
{
	for (int i = 0; i < 6; i++) {
		int v = 0;
		for (int j = 0; j < 2; j++) {
			char c = *s++;
			int d = c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10 : -1;
			if (d < 0)
				return -EINVAL;
			v = v * 16 + d;
		}
		out[i] = (uint8_t)v;
		if (*s++ != (i < 5 ? ':' : '\0'))
			return -EINVAL;
	}
	return 0;
}

/* what the kernel takes as an interface name */
static int good_ifname(const char *n)
{
	size_t len = strlen(n);
	if (!len || len >= IFNAMSIZ || !strcmp(n, ".") || !strcmp(n, ".."))
		return 0;
	for (; *n; n++)
		if (*n == '/' || *n == ':' || *n == ' ' || (*n >= '\t' && *n <= '\r'))
			return 0;
	return 1;
}

/* the RTM_NEWLINK of nsh_veth, into r: 0 or -EINVAL */
static int veth_request(struct req *r, const char *name, const char *mac_s, const char *peer, const char *peer_mac_s, int32_t ns_fd, int32_t ns_pid, int32_t up)
{
	uint8_t mac_b[6], peer_mac_b[6];
	const uint8_t *mac = NULL, *peer_mac = NULL;
	if (!good_ifname(name) || !good_ifname(peer))
		return -EINVAL;
	if (mac_s && *mac_s) {
		if (parse_mac(mac_s, mac_b) < 0)
			return -EINVAL;
		mac = mac_b;
	}
	if (peer_mac_s && *peer_mac_s) {
		if (parse_mac(peer_mac_s, peer_mac_b) < 0)
			return -EINVAL;
		peer_mac = peer_mac_b;
	}
	memset(r, 0, sizeof(*r));
	struct nlmsghdr *h = (struct nlmsghdr *)r->buf;
	h->nlmsg_type = RTM_NEWLINK;
	h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
	h->nlmsg_seq = SEQ;
	r->len = NLMSG_HDRLEN;
	struct ifinfomsg *ifi = (struct ifinfomsg *)(r->buf + r->len);
	if (up) {
		/* the kernel applies a new link's flags once it exists */
		ifi->ifi_flags = IFF_UP;
		ifi->ifi_change = IFF_UP;
	}
	r->len += NLMSG_ALIGN(sizeof(*ifi));
	if (mac)
		attr(r, IFLA_ADDRESS, mac, 6);
	str(r, IFLA_IFNAME, name);
	size_t info = nest(r, IFLA_LINKINFO);
	/* without its NUL, as iproute2 sends it */
	attr(r, IFLA_INFO_KIND, "veth", 4);
	size_t data = nest(r, IFLA_INFO_DATA);
	/* VETH_INFO_PEER is not a plain nest: a struct ifinfomsg for the peer
	 * comes first, then the peer's own attributes */
	size_t p = nest(r, VETH_INFO_PEER);
	r->len += NLMSG_ALIGN(sizeof(struct ifinfomsg));
	if (peer_mac)
		attr(r, IFLA_ADDRESS, peer_mac, 6);
	if (ns_fd >= 0) {
		uint32_t v = (uint32_t)ns_fd;
		attr(r, IFLA_NET_NS_FD, &v, 4);
	} else if (ns_pid > 0) {
		uint32_t v = (uint32_t)ns_pid;
		attr(r, IFLA_NET_NS_PID, &v, 4);
	}
	str(r, IFLA_IFNAME, peer);
	end(r, p);
	end(r, data);
	end(r, info);
	h->nlmsg_len = (uint32_t)r->len;
	return 0;
}

/* (out, cap, then as nsh_veth) -> the request nsh_veth sends, its length or -errno (for tests) */
int nsh_veth_request(uint8_t *out, uint32_t cap, const char *name, const char *mac, const char *peer, const char *peer_mac, int32_t ns_fd, int32_t ns_pid, int32_t up)
{
	struct req r;
	int e = veth_request(&r, name, mac, peer, peer_mac, ns_fd, ns_pid, up);
	if (e < 0)
		return e;
	if (r.len > cap)
		return -ENOSPC;
	memcpy(out, r.buf, r.len);
	return (int)r.len;
}

/*
 * (sock, name, mac or NULL, peer, peer_mac or NULL, ns_fd, ns_pid, up) -> 0,
 * or -errno (-EINVAL for a name or MAC the kernel would not take). MACs are
 * "xx:xx:xx:xx:xx:xx"; NULL or "" lets the kernel pick one. Made through the rtnetlink socket sock (in whatever
 * namespace it was opened), or a new one in this thread's namespace when
 * sock < 0. The peer goes into the network namespace ns_fd (when >= 0) or
 * that of ns_pid (when > 0), else next to `name`. With `up` this end is
 * created up; the peer cannot be (the kernel opens it before the pair is
 * joined, and refuses).
 */
int nsh_veth(int32_t sock, const char *name, const char *mac, const char *peer, const char *peer_mac, int32_t ns_fd, int32_t ns_pid, int32_t up)
{
	struct req r;
	int e = veth_request(&r, name, mac, peer, peer_mac, ns_fd, ns_pid, up);
	return e < 0 ? e : talk(&r, sock);
}

/* (iface, port) -> a UDP socket on INADDR_ANY:port that only sees iface, or -errno */
int nsh_udp_on_device(const char *iface, uint32_t port)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = { INADDR_ANY } };
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, iface, (socklen_t)strlen(iface)) < 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}
