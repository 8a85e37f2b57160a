/*
 * compat: what lets one build of the shim run on any Linux host with glibc
 * 2.17 or newer (RHEL 7, Debian 8, Ubuntu 14.04 and up) and on musl.
 *
 * A glibc newer than the host's adds new symbol versions for old functions
 * (pthread_create@GLIBC_2.34 when libpthread moved into libc, fstat@GLIBC_2.33
 * when the __fxstat wrappers went). The shared object binds those few to the
 * versions every glibc since 2.2.5 (x86-64) or 2.17 (arm64, its first) has,
 * and takes the stat family as raw system calls, which have the same
 * semantics and the same struct stat on both architectures. `make test`
 * checks the result (tests/unit/release-glibc.test.ts).
 *
 * The supervisor is linked statically against musl and needs none of this;
 * on musl the pins are not made (musl has one version of everything).
 */
#ifndef NSH_COMPAT_H
#define NSH_COMPAT_H

#include <errno.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__GLIBC__) && !defined(NSH_STATIC)
#if defined(__x86_64__)
#define NSH_GLIBC_BASE "GLIBC_2.2.5"
#elif defined(__aarch64__)
#define NSH_GLIBC_BASE "GLIBC_2.17"
#else
#error "spawnctl's shim is built for x86-64 and arm64 only"
#endif
__asm__(".symver pthread_create,pthread_create@" NSH_GLIBC_BASE);
__asm__(".symver pthread_attr_setstacksize,pthread_attr_setstacksize@" NSH_GLIBC_BASE);
__asm__(".symver pthread_sigmask,pthread_sigmask@" NSH_GLIBC_BASE);
#endif

/* the stat family and mknodat without the libc wrappers (see above) */
static inline int nsh_fstat(int fd, struct stat *st)
{
	return (int)syscall(SYS_fstat, fd, st);
}

static inline int nsh_fstatat(int dirfd, const char *name, struct stat *st, int flags)
{
	return (int)syscall(SYS_newfstatat, dirfd, name, st, flags);
}

/* the kernel takes the device number as 32 bits, encoded the way makedev() does for them */
static inline int nsh_mknodat(int dirfd, const char *name, mode_t mode, dev_t dev)
{
	unsigned int kdev = (unsigned int)dev;
	if ((dev_t)kdev != dev) {
		errno = EINVAL;
		return -1;
	}
	return (int)syscall(SYS_mknodat, dirfd, name, mode, kdev);
}

#endif
