/*
 * net: a UDP socket bound to a port on one link (the DHCP responder's, made
 * before the container may ask), in the spawnctl process itself (linked into
 * the shared object with nsh.c and shift.c). A system call wrapper, no
 * policy: the netlink messages, names and MAC addresses are all TypeScript
 * (src/net/).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
