/*
 * nsh: the part of spawnctl that must run in a fresh single-threaded child.
 *
 * TypeScript decides, this file executes. A plan (see src/sys/abi.ts) is a
 * flat list of operations; nsh_spawn() validates it, clones with the
 * requested namespace flags and runs the operations one by one with plain
 * system calls, then execs. A failing operation is reported to the parent as
 * (op index, errno) over a close-on-exec socket; EOF on that socket means the
 * exec succeeded. No policy lives here.
 *
 * After clone() the child is a copy of a multi-threaded process: it must not
 * allocate, take locks or use stdio. Everything below the "child side" marker
 * sticks to system calls and stack buffers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <net/if.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"
#include "nsh_abi.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef RESOLVE_NO_MAGICLINKS
#define RESOLVE_NO_MAGICLINKS 0x02
#endif
#ifndef RESOLVE_IN_ROOT
#define RESOLVE_IN_ROOT 0x10
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef MOVE_MOUNT_T_EMPTY_PATH
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

struct nsh_open_how { uint64_t flags, mode, resolve; };
struct nsh_mount_attr { uint64_t attr_set, attr_clr, propagation, userns_fd; };

/* ------------------------------------------------------------------------ */
/* Validation (parent side, before clone)                                    */

struct plan {
	const struct nsh_header *h;
	const struct nsh_op *ops;
	const char *str;
	uint32_t nops, strlen_;
};

static int str_ok(const struct plan *p, uint32_t off)
{
	if (off == NSH_NO_STRING)
		return 1;
	if (off >= p->strlen_)
		return 0;
	return memchr(p->str + off, 0, p->strlen_ - off) != NULL;
}

static int blob_ok(const struct plan *p, uint32_t off, uint64_t len)
{
	if (off == NSH_NO_STRING)
		return len == 0;
	return off <= p->strlen_ && len <= (uint64_t)(p->strlen_ - off);
}

/* a block of `count` consecutive NUL-terminated strings */
static int block_ok(const struct plan *p, uint32_t off, uint64_t count)
{
	if (count > 1u << 20)
		return 0;
	if (count == 0)
		return 1;
	if (off == NSH_NO_STRING)
		return 0;
	for (uint64_t i = 0; i < count; i++) {
		if (!str_ok(p, off))
			return 0;
		off += (uint32_t)strlen(p->str + off) + 1;
	}
	return 1;
}

static int parent_op_ok(const struct plan *p, const struct nsh_op *o);

/* a plan's header and ops; parent: the parent's side (POP kinds only), else the child's */
static int plan_parse(struct plan *p, const uint8_t *buf, uint64_t len, int parent)
{
	if (len < NSH_HEADER_SIZE)
		return -EINVAL;
	p->h = (const struct nsh_header *)buf;
	if (p->h->magic != NSH_ABI_MAGIC || p->h->version != NSH_ABI_VERSION)
		return -EPROTO;
	p->nops = p->h->nops;
	p->strlen_ = p->h->strtab_len;
	if (p->nops > 1u << 16)
		return -E2BIG;
	uint64_t need = NSH_HEADER_SIZE + (uint64_t)p->nops * NSH_OP_SIZE + p->strlen_;
	if (need != len)
		return -EINVAL;
	p->ops = (const struct nsh_op *)(buf + NSH_HEADER_SIZE);
	p->str = (const char *)(buf + NSH_HEADER_SIZE + (uint64_t)p->nops * NSH_OP_SIZE);
	if (p->strlen_ == 0 || p->str[p->strlen_ - 1] != 0)
		return -EINVAL;
	for (uint32_t i = 0; i < p->nops; i++) {
		const struct nsh_op *o = &p->ops[i];
		if (parent) {
			if (!parent_op_ok(p, o))
				return -EINVAL;
			continue;
		}
		if (o->kind > NSH_OP_UMASK)
			return -EINVAL;
		switch (o->kind) {
		case NSH_OP_WRITE:
			if (!blob_ok(p, o->s[0], o->n[1]) || !str_ok(p, o->s[1]))
				return -EINVAL;
			break;
		case NSH_OP_AFFINITY:
			if (!blob_ok(p, o->s[0], o->n[0]))
				return -EINVAL;
			break;
		case NSH_OP_SECCOMP:
			if (o->n[0] == 0 || o->n[0] > 4096 || !blob_ok(p, o->s[0], o->n[0] * sizeof(struct sock_filter)))
				return -EINVAL;
			break;
		case NSH_OP_SETGROUPS:
			if (o->n[0] > 65536 || !blob_ok(p, o->s[0], o->n[0] * 4))
				return -EINVAL;
			break;
		case NSH_OP_EXEC:
			if (!str_ok(p, o->s[0]) || o->s[0] == NSH_NO_STRING || !block_ok(p, o->s[1], o->n[0]) ||
			    !block_ok(p, o->s[2], o->n[1]))
				return -EINVAL;
			break;
		default:
			for (int k = 0; k < 4; k++)
				if (!str_ok(p, o->s[k]))
					return -EINVAL;
		}
		if ((o->kind == NSH_OP_RECV_FD || o->kind == NSH_OP_SEND_FD || o->kind == NSH_OP_OPEN || o->kind == NSH_OP_BIND_SOCKET ||
		     o->kind == NSH_OP_MOVE_MOUNT || o->kind == NSH_OP_OPEN_TREE) &&
		    o->n[2] >= NSH_FD_SLOTS)
			return -EINVAL;
		if ((o->flags & NSH_F_IDMAP_SLOT) && o->n[3] >= NSH_FD_SLOTS)
			return -EINVAL;
	}
	return 0;
}

static int parent_op_ok(const struct plan *p, const struct nsh_op *o)
{
	for (int k = 0; k < 4; k++)
		if (!str_ok(p, o->s[k]))
			return 0;
	switch (o->kind) {
	case NSH_POP_MAP_USERNS:
	case NSH_POP_MAKE_USERNS:
		return o->n[0] < NSH_PARENT_REGS && o->s[0] != NSH_NO_STRING && o->s[1] != NSH_NO_STRING;
	case NSH_POP_IDMAP_TREE:
		return o->n[0] < NSH_PARENT_REGS && o->s[1] != NSH_NO_STRING;
	case NSH_POP_CLONE_TREE:
		return o->s[1] != NSH_NO_STRING;
	case NSH_POP_MAKE_DEVFS:
		return o->n[0] <= 64 && o->s[0] != NSH_NO_STRING && block_ok(p, o->s[1], o->n[0]) &&
		       blob_ok(p, o->n[0] ? o->s[2] : NSH_NO_STRING, o->n[0] * 8) && o->n[1] <= UINT32_MAX && o->n[2] <= UINT32_MAX;
	case NSH_POP_CHOWN_PATHS:
		return block_ok(p, o->s[1], o->n[0]) && o->n[1] <= UINT32_MAX && o->n[2] <= UINT32_MAX;
	case NSH_POP_CLOSE_REG:
		return o->n[0] < NSH_PARENT_REGS;
	case NSH_POP_GO:
	case NSH_POP_STEP:
		return 1;
	}
	return 0;
}

/*
 * A parent program (see abi.ts POP), validated: its ops and strings, for
 * nsh_parent_run in shift.c. 0 or -errno.
 */
int nsh_parent_parse(const uint8_t *buf, uint64_t len, const struct nsh_op **ops, const char **str, uint32_t *nops)
{
	struct plan p;
	int r = plan_parse(&p, buf, len, 1);
	if (r < 0)
		return r;
	*ops = p.ops;
	*str = p.str;
	*nops = p.nops;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Child side: system calls and stack buffers only                           */

struct ctx {
	struct plan p;
	int sync;     /* our end of the socket to the parent */
	int rootfd;   /* O_PATH fd of the root that IN_ROOT paths live in, or -1 */
	int console;  /* the pty slave once CONSOLE ran, or -1 */
	int slot[NSH_FD_SLOTS];
};

static const char *S(const struct ctx *c, uint32_t off)
{
	return off == NSH_NO_STRING ? NULL : c->p.str + off;
}

static void fd_path(char *buf, int fd)
{
	/* "/proc/self/fd/<fd>" without snprintf */
	static const char pre[] = "/proc/self/fd/";
	char tmp[16];
	int n = 0;
	memcpy(buf, pre, sizeof(pre) - 1);
	buf += sizeof(pre) - 1;
	do {
		tmp[n++] = (char)('0' + fd % 10);
		fd /= 10;
	} while (fd > 0);
	while (n > 0)
		*buf++ = tmp[--n];
	*buf = 0;
}

static int xclose(int fd)
{
	if (fd >= 0) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return -1;
}

/* Open `path`. Inside the root it is resolved with RESOLVE_IN_ROOT, so ".."
 * and absolute symlinks in the tree can never leave it. */
static int resolve(struct ctx *c, const char *path, int in_root, int oflags, mode_t mode)
{
	if (!in_root)
		return open(path, oflags | O_CLOEXEC, mode);
	if (c->rootfd < 0) {
		errno = EBADF;
		return -1;
	}
	while (*path == '/')
		path++;
	if (!*path)
		path = ".";
	struct nsh_open_how how = {
		.flags = (uint64_t)(oflags | O_CLOEXEC),
		.mode = (oflags & O_CREAT) ? mode : 0,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	return (int)syscall(SYS_openat2, c->rootfd, path, &how, sizeof(how));
}

/* Split `path` into an opened parent directory and the last component.
 * `buf` receives a copy of the path; *name points into it. */
static int open_parent(struct ctx *c, const char *path, int in_root, char *buf, size_t bufsz, const char **name)
{
	size_t len = strlen(path);
	if (len == 0 || len >= bufsz) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, len + 1);
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = 0;
	char *slash = strrchr(buf, '/');
	if (!slash) {
		*name = buf;
		return in_root ? resolve(c, "/", 1, O_PATH | O_DIRECTORY, 0) : open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	}
	*name = slash + 1;
	if (!**name) {
		errno = EINVAL; /* the root itself has no parent */
		return -1;
	}
	if (slash == buf)
		return resolve(c, "/", in_root, O_PATH | O_DIRECTORY, 0);
	*slash = 0;
	int fd = resolve(c, buf, in_root, O_PATH | O_DIRECTORY, 0);
	*slash = '/';
	return fd;
}

static int mkdir_p_depth(struct ctx *c, const char *path, int in_root, mode_t mode, int depth);

/* `name` in `pfd` exists but does not resolve: a dangling symlink. Inside the
 * root, create what it points to (resolved inside the root as well), as
 * nspawn does for mount points behind symlinks. */
static int mkdir_link_target(struct ctx *c, int pfd, const char *name, const char *parent_path, mode_t mode, int depth)
{
	char target[4096], full[8192];
	ssize_t n = readlinkat(pfd, name, target, sizeof(target) - 1);
	if (n < 0)
		return -1;
	target[n] = 0;
	if (target[0] == '/') {
		memcpy(full, target, (size_t)n + 1);
	} else {
		size_t pl = strlen(parent_path);
		if (pl + (size_t)n + 2 > sizeof(full)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(full, parent_path, pl);
		full[pl] = '/';
		memcpy(full + pl + 1, target, (size_t)n + 1);
	}
	return mkdir_p_depth(c, full, 1, mode, depth + 1);
}

static int mkdir_p(struct ctx *c, const char *path, int in_root, mode_t mode)
{
	return mkdir_p_depth(c, path, in_root, mode, 0);
}

static int mkdir_p_depth(struct ctx *c, const char *path, int in_root, mode_t mode, int depth)
{
	char buf[4096];
	if (depth > 40) {
		errno = ELOOP;
		return -1;
	}
	size_t len = strlen(path);
	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, len + 1);
	/* walk every prefix ending at a '/' and finally the whole path */
	for (size_t i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != 0)
			continue;
		if (buf[i - 1] == '/')
			continue;
		char saved = buf[i];
		buf[i] = 0;
		int fd = resolve(c, buf, in_root, O_PATH | O_DIRECTORY, 0);
		if (fd >= 0) {
			close(fd);
		} else if (errno == ENOENT) {
			char pbuf[4096];
			const char *name;
			int pfd = open_parent(c, buf, in_root, pbuf, sizeof(pbuf), &name);
			if (pfd < 0)
				return -1;
			int r = mkdirat(pfd, name, mode);
			if (r < 0 && errno == EEXIST && in_root) {
				/* something is there but does not resolve: a dangling link */
				struct stat st;
				if (nsh_fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
					char pp[4096];
					size_t plen = (size_t)(name - pbuf);
					memcpy(pp, pbuf, plen);
					pp[plen] = 0;
					r = mkdir_link_target(c, pfd, name, plen ? pp : "/", mode, depth);
					xclose(pfd);
					if (r < 0)
						return -1;
					buf[i] = saved;
					continue;
				}
			}
			xclose(pfd);
			if (r < 0 && errno != EEXIST)
				return -1;
		} else {
			return -1;
		}
		buf[i] = saved;
	}
	return 0;
}

static int mkfile_p(struct ctx *c, const char *path, int in_root, mode_t mode)
{
	int fd = resolve(c, path, in_root, O_PATH, 0);
	if (fd >= 0)
		return close(fd), 0;
	if (errno != ENOENT)
		return -1;
	char buf[4096];
	const char *name;
	int pfd = open_parent(c, path, in_root, buf, sizeof(buf), &name);
	if (pfd < 0 && errno == ENOENT) {
		/* create the parents, then retry */
		char *slash = strrchr(buf, '/');
		if (slash && slash != buf) {
			*slash = 0;
			if (mkdir_p(c, buf, in_root, 0755) < 0)
				return -1;
			*slash = '/';
		}
		pfd = open_parent(c, path, in_root, buf, sizeof(buf), &name);
	}
	if (pfd < 0)
		return -1;
	fd = openat(pfd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, mode);
	xclose(pfd);
	if (fd < 0)
		return errno == EEXIST ? 0 : -1;
	close(fd);
	return 0;
}

/* Turn a plan path into something mount(2) accepts: inside the root it is an
 * fd opened with RESOLVE_IN_ROOT and named through /proc/self/fd. */
static int path_arg(struct ctx *c, const char *path, int in_root, int nofollow, char *out, int *fdout)
{
	*fdout = -1;
	if (!in_root) {
		size_t n = strlen(path);
		if (n >= 4096) {
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(out, path, n + 1);
		return 0;
	}
	int fd = resolve(c, path, 1, O_PATH | (nofollow ? O_NOFOLLOW : 0), 0);
	if (fd < 0)
		return -1;
	*fdout = fd;
	fd_path(out, fd);
	return 0;
}

static int prepare_target(struct ctx *c, const struct nsh_op *o, const char *dst, int in_root)
{
	if (o->flags & NSH_F_MKDIR)
		return mkdir_p(c, dst, in_root, 0755);
	if (o->flags & NSH_F_MKFILE)
		return mkfile_p(c, dst, in_root, 0644);
	return 0;
}

static unsigned long statvfs_to_ms(unsigned long f)
{
	unsigned long m = 0;
	if (f & ST_RDONLY) m |= MS_RDONLY;
	if (f & ST_NOSUID) m |= MS_NOSUID;
	if (f & ST_NODEV) m |= MS_NODEV;
	if (f & ST_NOEXEC) m |= MS_NOEXEC;
	if (f & ST_NOATIME) m |= MS_NOATIME;
	if (f & ST_NODIRATIME) m |= MS_NODIRATIME;
	if (f & ST_RELATIME) m |= MS_RELATIME;
	return m;
}

static int do_mount(struct ctx *c, const struct nsh_op *o)
{
	const char *src = S(c, o->s[0]), *dst = S(c, o->s[1]);
	char sbuf[4096], dbuf[4096];
	int sfd = -1, dfd = -1, r;
	int dst_in_root = !!(o->flags & NSH_F_DST_IN_ROOT);
	if (dst && prepare_target(c, o, dst, dst_in_root) < 0)
		return -1;
	if (o->flags & NSH_F_INACCESSIBLE) {
		/* pick the empty node of the same type as the target */
		struct stat st;
		int tfd = resolve(c, dst, dst_in_root, O_PATH, 0);
		if (tfd < 0)
			return -1;
		int r2 = nsh_fstat(tfd, &st);
		xclose(tfd);
		if (r2 < 0)
			return -1;
		const char *kind = S_ISDIR(st.st_mode) ? "dir" : S_ISCHR(st.st_mode) ? "chr" : S_ISBLK(st.st_mode) ? "blk" :
				   S_ISFIFO(st.st_mode) ? "fifo" : S_ISSOCK(st.st_mode) ? "sock" : "reg";
		size_t n = strlen(src);
		if (n + 8 >= sizeof(sbuf)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		char nbuf[4096];
		memcpy(nbuf, src, n);
		nbuf[n] = '/';
		memcpy(nbuf + n + 1, kind, strlen(kind) + 1);
		if (path_arg(c, nbuf, !!(o->flags & NSH_F_SRC_IN_ROOT), 0, sbuf, &sfd) < 0)
			return -1;
	} else if (src && path_arg(c, src, !!(o->flags & NSH_F_SRC_IN_ROOT), 0, sbuf, &sfd) < 0)
		return -1;
	if (dst && path_arg(c, dst, dst_in_root, 0, dbuf, &dfd) < 0)
		return xclose(sfd);
	r = mount(src ? sbuf : NULL, dst ? dbuf : NULL, S(c, o->s[2]), (unsigned long)o->n[0], S(c, o->s[3]));
	xclose(sfd);
	xclose(dfd);
	if (r == 0 && (o->flags & NSH_F_SETATTR_AFTER) && dst) {
		/* bind first, then change the new mount: the kernel ignores MS_RDONLY
		 * on the initial bind. Reopening the path now gets the new mount. */
		int fd = resolve(c, dst, dst_in_root, O_PATH, 0);
		if (fd < 0)
			return -1;
		struct nsh_mount_attr a = { o->n[1], 0, 0, 0 };
		r = (int)syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | ((o->flags & NSH_F_RECURSIVE) ? AT_RECURSIVE : 0), &a, sizeof(a));
		if (r < 0 && errno == ENOSYS) {
			char p[64];
			struct statvfs sv;
			fd_path(p, fd);
			r = fstatvfs(fd, &sv);
			if (r == 0)
				r = mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | statvfs_to_ms(sv.f_flag) |
						     ((o->n[1] & MOUNT_ATTR_RDONLY) ? MS_RDONLY : 0) | ((o->n[1] & 0x2) ? MS_NOSUID : 0) |
						     ((o->n[1] & 0x4) ? MS_NODEV : 0) | ((o->n[1] & 0x8) ? MS_NOEXEC : 0), NULL);
		}
		xclose(fd);
	}
	return r;
}


static int do_setattr(struct ctx *c, const struct nsh_op *o)
{
	const char *dst = S(c, o->s[1]);
	int fd;
	if (dst)
		fd = resolve(c, dst, !!(o->flags & NSH_F_DST_IN_ROOT), O_PATH, 0);
	else
		fd = fcntl(c->slot[o->n[2]], F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct nsh_mount_attr a = {
		.attr_set = o->n[0],
		.attr_clr = o->n[1],
		.propagation = dst ? o->n[2] : 0,
		.userns_fd = 0,
	};
	if (o->flags & NSH_F_IDMAP_SLOT) {
		a.attr_set |= MOUNT_ATTR_IDMAP;
		a.userns_fd = (uint64_t)c->slot[o->n[3]];
	}
	unsigned flags = AT_EMPTY_PATH | ((o->flags & NSH_F_RECURSIVE) ? AT_RECURSIVE : 0);
	int r = (int)syscall(SYS_mount_setattr, fd, "", flags, &a, sizeof(a));
	if (r < 0 && errno == ENOSYS && !(o->flags & NSH_F_IDMAP_SLOT) && dst) {
		/* Kernels before 5.12: one mount at a time with the old API. A bind
		 * remount must repeat the flags the mount already has, or the kernel
		 * refuses to clear locked ones. */
		char p[64];
		fd_path(p, fd);
		r = 0;
		if (o->n[2])
			r = mount(NULL, p, NULL, (unsigned long)o->n[2] | ((o->flags & NSH_F_RECURSIVE) ? MS_REC : 0), NULL);
		if (r == 0 && (o->n[0] | o->n[1])) {
			struct statvfs sv;
			r = fstatvfs(fd, &sv);
			if (r == 0) {
				unsigned long m = statvfs_to_ms(sv.f_flag);
				if (o->n[0] & MOUNT_ATTR_RDONLY) m |= MS_RDONLY;
				if (o->n[1] & MOUNT_ATTR_RDONLY) m &= ~(unsigned long)MS_RDONLY;
				if (o->n[0] & 0x2) m |= MS_NOSUID;
				if (o->n[0] & 0x4) m |= MS_NODEV;
				if (o->n[0] & 0x8) m |= MS_NOEXEC;
				r = mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | m, NULL);
			}
		}
	}
	xclose(fd);
	return r;
}

static int do_parent_op(struct ctx *c, const struct nsh_op *o)
{
	char buf[4096];
	const char *name;
	const char *path = S(c, o->s[1]);
	int in_root = !!(o->flags & NSH_F_DST_IN_ROOT);
	if ((o->flags & NSH_F_MKDIR) || o->kind == NSH_OP_MKNOD || o->kind == NSH_OP_SYMLINK) {
		/* make the parent directories; SYMLINK and MKNOD always do */
		char pb[4096];
		size_t len = strlen(path);
		if (len < sizeof(pb)) {
			memcpy(pb, path, len + 1);
			char *slash = strrchr(pb, '/');
			if (slash && slash != pb) {
				*slash = 0;
				if (mkdir_p(c, pb, in_root, 0755) < 0)
					return -1;
			}
		}
	}
	int pfd = open_parent(c, path, in_root, buf, sizeof(buf), &name);
	if (pfd < 0)
		return -1;
	int r;
	switch (o->kind) {
	case NSH_OP_MKNOD:
		r = nsh_mknodat(pfd, name, (mode_t)o->n[0], (dev_t)o->n[1]);
		break;
	case NSH_OP_SYMLINK:
		r = symlinkat(S(c, o->s[0]), pfd, name);
		break;
	case NSH_OP_RMDIR:
		r = unlinkat(pfd, name, AT_REMOVEDIR);
		break;
	case NSH_OP_UNLINK:
		r = unlinkat(pfd, name, 0);
		break;
	default:
		errno = EINVAL;
		r = -1;
	}
	xclose(pfd);
	return r;
}

static int do_write(struct ctx *c, const struct nsh_op *o)
{
	int oflags = O_WRONLY | O_NOCTTY;
	if (o->flags & NSH_F_CREATE) oflags |= O_CREAT;
	if (o->flags & NSH_F_TRUNC) oflags |= O_TRUNC;
	if (o->flags & NSH_F_NOFOLLOW) oflags |= O_NOFOLLOW;
	const char *path = S(c, o->s[1]);
	int in_root = !!(o->flags & NSH_F_DST_IN_ROOT);
	if ((o->flags & NSH_F_MKDIR) && (o->flags & NSH_F_CREATE)) {
		char pb[4096];
		size_t len = strlen(path);
		if (len < sizeof(pb)) {
			memcpy(pb, path, len + 1);
			char *slash = strrchr(pb, '/');
			if (slash && slash != pb) {
				*slash = 0;
				if (mkdir_p(c, pb, in_root, 0755) < 0)
					return -1;
			}
		}
	}
	/* without blocking: a FIFO planted in the tree must not hang us; and
	 * only into a regular file (procfs, sysfs and cgroupfs files are) */
	int fd = resolve(c, path, in_root, oflags | O_NONBLOCK, (mode_t)o->n[0]);
	if (fd < 0)
		return -1;
	struct stat st;
	if (nsh_fstat(fd, &st) < 0)
		return xclose(fd);
	if (!S_ISREG(st.st_mode)) {
		xclose(fd);
		errno = EINVAL;
		return -1;
	}
	const char *data = o->s[0] == NSH_NO_STRING ? "" : c->p.str + o->s[0];
	uint64_t left = o->n[1];
	while (left > 0) {
		ssize_t w = write(fd, data, left);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return xclose(fd);
		}
		data += w;
		left -= (uint64_t)w;
	}
	if ((o->flags & NSH_F_CREATE) && fchmod(fd, (mode_t)o->n[0]) < 0 && errno != EROFS)
		return xclose(fd);
	return close(fd);
}

static int send_msg(struct ctx *c, uint32_t type, uint32_t op, int32_t err, uint32_t arg, int fd)
{
	struct nsh_msg m = { type, op, err, arg };
	struct iovec iov = { &m, sizeof(m) };
	union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (fd >= 0) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	ssize_t r;
	do
		r = sendmsg(c->sync, &mh, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -1 : 0;
}

static int recv_fd(int sock, uint8_t *byte)
{
	union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
	struct iovec iov = { byte, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	ssize_t r;
	do
		r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -1;
	if (r == 0) {
		errno = EPIPE;
		return -1;
	}
	int fd = -1;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
			memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

static int do_console(struct ctx *c, const struct nsh_op *o)
{
	int in_root = !!(o->flags & NSH_F_DST_IN_ROOT);
	int m = resolve(c, S(c, o->s[1]), in_root, O_RDWR | O_NOCTTY, 0);
	if (m < 0)
		return -1;
	int zero = 0;
	unsigned int n = 0;
	if (ioctl(m, TIOCSPTLCK, &zero) < 0 || ioctl(m, TIOCGPTN, &n) < 0)
		return xclose(m);
	int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0)
		return xclose(m);
	const char *link = S(c, o->s[2]);
	if (link) {
		char target[32] = "pts/";
		char tmp[12];
		int k = 0, i = 4;
		do {
			tmp[k++] = (char)('0' + n % 10);
			n /= 10;
		} while (n);
		while (k)
			target[i++] = tmp[--k];
		target[i] = 0;
		char buf[4096];
		const char *name;
		int pfd = open_parent(c, link, in_root, buf, sizeof(buf), &name);
		if (pfd < 0)
			return xclose(m), xclose(s);
		unlinkat(pfd, name, 0);
		int r = symlinkat(target, pfd, name);
		xclose(pfd);
		if (r < 0)
			return xclose(m), xclose(s);
	}
	if (o->n[0] && o->n[1]) {
		/* a fixed size, there before the payload looks */
		struct winsize ws = { .ws_row = (unsigned short)o->n[0], .ws_col = (unsigned short)o->n[1] };
		if (ioctl(s, TIOCSWINSZ, &ws) < 0)
			return xclose(m), xclose(s);
	}
	if (send_msg(c, NSH_MSG_FD, 0, 0, NSH_FD_TAG_CONSOLE, m) < 0)
		return xclose(m), xclose(s);
	close(m);
	c->console = s;
	if (o->flags & NSH_F_STDIO) {
		for (int fd = 0; fd < 3; fd++)
			if (dup2(s, fd) < 0)
				return -1;
	}
	return 0;
}

static int do_caps(const struct nsh_op *o)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	uint64_t set = o->n[0];
	for (int i = 0; i < 2; i++) {
		d[i].effective = d[i].permitted = d[i].inheritable = (uint32_t)(set >> (32 * i));
	}
	if (syscall(SYS_capset, &hdr, d) < 0)
		return -1;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -1;
	for (int cap = 0; cap < 64; cap++)
		if ((o->n[1] >> cap) & 1)
			if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
				return -1;
	return 0;
}

static int do_capbset(const struct nsh_op *o)
{
	for (int cap = 0; cap < 64; cap++) {
		if ((o->n[0] >> cap) & 1)
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
			if (errno == EINVAL)
				break; /* past the kernel's last capability */
			return -1;
		}
	}
	return 0;
}

static const char *env_get(char *const *envp, const char *name, size_t nlen)
{
	for (; *envp; envp++)
		if (strncmp(*envp, name, nlen) == 0 && (*envp)[nlen] == '=')
			return *envp + nlen + 1;
	return NULL;
}

/* the plan's own ops run with umask 0 (their modes are exact); the payload gets this */
static mode_t exec_umask = 022;

static int do_exec(struct ctx *c, const struct nsh_op *o)
{
	uint64_t argc = o->n[0], envc = o->n[1];
	char *argv[argc + 1];
	char *envp[envc + 1];
	const char *s = o->s[1] == NSH_NO_STRING ? NULL : c->p.str + o->s[1];
	for (uint64_t i = 0; i < argc; i++) {
		argv[i] = (char *)s;
		s += strlen(s) + 1;
	}
	argv[argc] = NULL;
	s = o->s[2] == NSH_NO_STRING ? NULL : c->p.str + o->s[2];
	for (uint64_t i = 0; i < envc; i++) {
		envp[i] = (char *)s;
		s += strlen(s) + 1;
	}
	envp[envc] = NULL;
	const char *file = S(c, o->s[0]);
	umask(exec_umask);
	if (!(o->flags & NSH_F_SEARCH_PATH) || strchr(file, '/')) {
		execve(file, argv, envp);
		return -1;
	}
	const char *path = env_get(envp, "PATH", 4);
	if (!path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	size_t flen = strlen(file);
	int saw_eacces = 0;
	char buf[4096];
	for (const char *p = path;; p++) {
		const char *e = strchrnul(p, ':');
		size_t dlen = (size_t)(e - p);
		if (dlen + flen + 2 <= sizeof(buf)) {
			if (dlen) {
				memcpy(buf, p, dlen);
				buf[dlen] = '/';
				memcpy(buf + dlen + 1, file, flen + 1);
			} else {
				memcpy(buf, file, flen + 1);
			}
			execve(buf, argv, envp);
			if (errno == EACCES)
				saw_eacces = 1;
			else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE && errno != ENODEV && errno != ETIMEDOUT)
				return -1;
		}
		if (!*e)
			break;
		p = e;
	}
	errno = saw_eacces ? EACCES : ENOENT;
	return -1;
}

static pid_t raw_fork(uint64_t flags)
{
	return (pid_t)syscall(SYS_clone, (unsigned long)flags | SIGCHLD, 0, 0, 0, 0);
}

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
struct nsh_clone_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

/* Fork into a cgroup2 directory. Moving a process later costs an RCU grace
 * period (the global threadgroup lock); starting it there costs nothing.
 * Returns -2 when the kernel has no clone3 or CLONE_INTO_CGROUP. */
static pid_t fork_into_cgroup(uint64_t flags, int cgroup_fd)
{
	struct nsh_clone_args a;
	memset(&a, 0, sizeof(a));
	a.flags = flags | CLONE_INTO_CGROUP;
	a.exit_signal = SIGCHLD;
	a.cgroup = (uint64_t)cgroup_fd;
	long r = syscall(SYS_clone3, &a, sizeof(a));
	if (r < 0 && (errno == ENOSYS || errno == E2BIG || errno == EINVAL))
		return -2;
	return (pid_t)r;
}

/* The fallback: the single-threaded child moves itself (writing "0"). */
static int join_cgroup_self(int cgroup_fd)
{
	int fd = openat(cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t w = write(fd, "0", 1);
	xclose(fd);
	return w == 1 ? 0 : -1;
}

static void reset_signal_handlers(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < _NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &sa, NULL);
}

/* The minimal init of --as-pid2: reap every child, pass signals on to the
 * payload, turn the poweroff/reboot signals systemd uses into a shutdown of
 * the container, and leave with the payload's exit status. */
static void stub_init(pid_t child)
{
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	int rtmin = SIGRTMIN;
	int shutdown = 0; /* 0 none, RB_POWER_OFF or RB_AUTOBOOT once asked */
	for (;;) {
		siginfo_t si;
		int sig = sigwaitinfo(&all, &si);
		if (sig < 0)
			continue;
		if (sig == SIGCHLD) {
			int st;
			pid_t p;
			while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
				if (p != child)
					continue;
				if (shutdown) {
					reboot(shutdown == 1 ? RB_POWER_OFF : RB_AUTOBOOT);
					_exit(0);
				}
				if (WIFEXITED(st))
					_exit(WEXITSTATUS(st));
				_exit(255);
			}
			continue;
		}
		if (sig == rtmin + 3 || sig == rtmin + 4 || sig == rtmin + 13 || sig == rtmin + 14) {
			shutdown = 1;
			kill(child, SIGTERM);
			kill(child, SIGCONT);
		} else if (sig == SIGINT || sig == rtmin + 5 || sig == rtmin + 6 || sig == rtmin + 15 || sig == rtmin + 16) {
			shutdown = 2;
			kill(child, SIGTERM);
			kill(child, SIGCONT);
		} else {
			kill(child, sig);
		}
	}
}

static int run_op(struct ctx *c, uint32_t i)
{
	const struct nsh_op *o = &c->p.ops[i];
	switch (o->kind) {
	case NSH_OP_NOP:
		return 0;
	case NSH_OP_BARRIER: {
		uint8_t b = 0;
		if (send_msg(c, NSH_MSG_BARRIER, i, 0, (uint32_t)o->n[0], -1) < 0)
			return -1;
		ssize_t r;
		do
			r = recv(c->sync, &b, 1, 0);
		while (r < 0 && errno == EINTR);
		if (r <= 0 || b != NSH_CTL_GO)
			_exit(1); /* the parent gave up on us */
		return 0;
	}
	case NSH_OP_SETNS: {
		int fd = open(S(c, o->s[1]), O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -1;
		int r = setns(fd, (int)o->n[0]);
		xclose(fd);
		return r;
	}
	case NSH_OP_UNSHARE:
		return unshare((int)o->n[0]);
	case NSH_OP_FORK_WAIT: {
		pid_t pid = raw_fork(0);
		if (pid < 0)
			return -1;
		if (pid == 0)
			return 0;
		/* the middle process: only waits; EOF on the socket must come from the child */
		close(c->sync);
		int st;
		while (waitpid(pid, &st, 0) < 0)
			if (errno != EINTR)
				_exit(1);
		if (WIFEXITED(st))
			_exit(WEXITSTATUS(st));
		_exit(128 + WTERMSIG(st));
	}
	case NSH_OP_STUB_INIT: {
		sigset_t all, old;
		sigfillset(&all);
		sigprocmask(SIG_SETMASK, &all, &old);
		pid_t pid = raw_fork(0);
		if (pid < 0)
			return -1;
		if (pid == 0) {
			sigprocmask(SIG_SETMASK, &old, NULL);
			if (o->n[1])
				close((int)o->n[0]);
			return 0;
		}
		close(c->sync);
		if (c->console >= 0)
			close(c->console);
		if (o->n[1]) {
			/* become the init program in the sealed memfd n0, so that
			 * /proc/1/exe is no host file a container process could
			 * hold on to; our fd of it is close-on-exec */
			char num[16], *args[3] = { (char *)"(sd-stubinit)", num, NULL }, *envp[1] = { NULL };
			/* no snprintf: a clone of a threaded process stays async-signal-safe */
			int k = 15;
			num[k] = 0;
			for (unsigned v = (unsigned)pid; k == 15 || v; v /= 10)
				num[--k] = (char)('0' + v % 10);
			args[1] = num + k;
			syscall(SYS_execveat, (int)o->n[0], "", args, envp, AT_EMPTY_PATH);
		}
		stub_init(pid);
		_exit(1);
	}
	case NSH_OP_PRCTL: {
		int r = prctl((int)o->n[0], (unsigned long)o->n[1], (unsigned long)o->n[2], 0, 0);
		if (r == 0 && o->n[0] == PR_SET_PDEATHSIG && c->sync >= 0) {
			/* the parent may have died before the signal was armed (getppid
			 * says nothing across a PID namespace): its end of the sync
			 * socket is closed then */
			struct pollfd pf = { c->sync, POLLRDHUP, 0 };
			if (poll(&pf, 1, 0) > 0 && (pf.revents & (POLLHUP | POLLRDHUP)))
				_exit(1);
		}
		return r;
	}
	case NSH_OP_MOUNT:
		return do_mount(c, o);
	case NSH_OP_SETATTR:
		return do_setattr(c, o);
	case NSH_OP_UMOUNT: {
		char buf[4096];
		int fd;
		if (path_arg(c, S(c, o->s[1]), !!(o->flags & NSH_F_DST_IN_ROOT), 1, buf, &fd) < 0)
			return -1;
		int r = umount2(buf, (int)o->n[0]);
		xclose(fd);
		return r;
	}
	case NSH_OP_MKDIR:
		return mkdir_p(c, S(c, o->s[1]), !!(o->flags & NSH_F_DST_IN_ROOT), (mode_t)o->n[0]);
	case NSH_OP_MKNOD:
	case NSH_OP_SYMLINK:
	case NSH_OP_RMDIR:
	case NSH_OP_UNLINK:
		return do_parent_op(c, o);
	case NSH_OP_WRITE:
		return do_write(c, o);
	case NSH_OP_CHOWN: {
		int fd = resolve(c, S(c, o->s[1]), !!(o->flags & NSH_F_DST_IN_ROOT), O_PATH | O_NOFOLLOW, 0);
		if (fd < 0)
			return -1;
		int r = fchownat(fd, "", (uid_t)o->n[0], (gid_t)o->n[1], AT_EMPTY_PATH);
		xclose(fd);
		return r;
	}
	case NSH_OP_CHMOD: {
		char buf[64];
		int fd = resolve(c, S(c, o->s[1]), !!(o->flags & NSH_F_DST_IN_ROOT), O_PATH, 0);
		if (fd < 0)
			return -1;
		fd_path(buf, fd);
		int r = chmod(buf, (mode_t)o->n[0]);
		xclose(fd);
		return r;
	}
	case NSH_OP_SET_ROOT: {
		int fd = resolve(c, S(c, o->s[1]), 0, O_PATH | O_DIRECTORY, 0);
		if (fd < 0)
			return -1;
		xclose(c->rootfd);
		c->rootfd = fd;
		return 0;
	}
	case NSH_OP_PIVOT: {
		/* pivot_root(".", ".") stacks the old root on top of the new one;
		 * detaching "." afterwards drops it without needing a put_old dir. */
		if (fchdir(c->rootfd) < 0)
			return -1;
		if (syscall(SYS_pivot_root, ".", ".") < 0)
			return -1;
		if (umount2(".", MNT_DETACH) < 0)
			return -1;
		if (chdir("/") < 0)
			return -1;
		int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return -1;
		xclose(c->rootfd);
		c->rootfd = fd;
		return 0;
	}
	case NSH_OP_HOSTNAME: {
		const char *h = S(c, o->s[0]);
		return sethostname(h, strlen(h));
	}
	case NSH_OP_UMASK:
		exec_umask = (mode_t)(o->n[0] & 0777);
		return 0;
	case NSH_OP_DOMAINNAME: {
		const char *h = S(c, o->s[0]);
		return setdomainname(h, strlen(h));
	}
	case NSH_OP_CONSOLE:
		return do_console(c, o);
	case NSH_OP_SETSID: {
		if (setsid() < 0 && errno != EPERM)
			return -1;
		if (o->flags & NSH_F_CTTY) {
			int t = c->console >= 0 ? c->console : 0;
			if (c->console >= 0)
				for (int fd = 0; fd < 3; fd++)
					if (dup2(c->console, fd) < 0)
						return -1;
			if (ioctl(t, TIOCSCTTY, 0) < 0)
				return -1;
		} else if ((o->flags & NSH_F_CTTY_STDIN) && isatty(0)) {
			if (ioctl(0, TIOCSCTTY, 0) < 0 && errno != EPERM)
				return -1;
		}
		return 0;
	}
	case NSH_OP_RLIMIT: {
		struct rlimit rl = { (rlim_t)o->n[1], (rlim_t)o->n[2] };
		return (int)syscall(SYS_prlimit64, 0, (int)o->n[0], &rl, NULL);
	}
	case NSH_OP_PERSONALITY:
		return personality((unsigned long)o->n[0]) < 0 ? -1 : 0;
	case NSH_OP_AFFINITY:
		return sched_setaffinity(0, (size_t)o->n[0], (const cpu_set_t *)(const void *)(c->p.str + o->s[0]));
	case NSH_OP_SECCOMP: {
		struct sock_fprog prog = { (unsigned short)o->n[0], (struct sock_filter *)(uintptr_t)(c->p.str + o->s[0]) };
		return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
	}
	case NSH_OP_CAPBSET:
		return do_capbset(o);
	case NSH_OP_SETGROUPS:
		/* raw system calls: glibc's wrappers would try to signal the
		 * parent's threads, which do not exist in this copy */
		return (int)syscall(SYS_setgroups, (int)o->n[0], o->n[0] ? (const void *)(c->p.str + o->s[0]) : NULL);
	case NSH_OP_SETGID:
		return (int)syscall(SYS_setresgid, (gid_t)o->n[0], (gid_t)o->n[0], (gid_t)o->n[0]);
	case NSH_OP_SETUID:
		return (int)syscall(SYS_setresuid, (uid_t)o->n[0], (uid_t)o->n[0], (uid_t)o->n[0]);
	case NSH_OP_CAPS:
		return do_caps(o);
	case NSH_OP_CHDIR: {
		const char *d = S(c, o->s[1]);
		if (chdir(d) == 0)
			return 0;
		if (o->flags & NSH_F_OPTIONAL)
			return chdir("/");
		return -1;
	}
	case NSH_OP_CLOSE_FROM: {
		/* close every fd from n0 up but the sync socket and, if n2, fd n1 */
		unsigned lo = (unsigned)o->n[0];
		unsigned keep[2] = { (unsigned)c->sync, o->n[2] ? (unsigned)o->n[1] : (unsigned)c->sync };
		if (keep[1] < keep[0]) {
			unsigned t = keep[0];
			keep[0] = keep[1];
			keep[1] = t;
		}
		for (int k = 0; k < 2; k++) {
			if (keep[k] > lo)
				syscall(SYS_close_range, lo, keep[k] - 1, 0);
			if (keep[k] + 1 > lo)
				lo = keep[k] + 1;
		}
		syscall(SYS_close_range, lo, ~0U, 0);
		c->console = -1;
		for (int k = 0; k < NSH_FD_SLOTS; k++)
			c->slot[k] = -1;
		return 0;
	}
	case NSH_OP_SIGRESET: {
		sigset_t none;
		sigemptyset(&none);
		return sigprocmask(SIG_SETMASK, &none, NULL);
	}
	case NSH_OP_EXEC:
		return do_exec(c, o);
	case NSH_OP_RECV_FD: {
		uint8_t b;
		int fd = recv_fd(c->sync, &b);
		if (fd < 0)
			return -1;
		xclose(c->slot[o->n[2]]);
		c->slot[o->n[2]] = fd;
		return 0;
	}
	case NSH_OP_SEND_FD:
		return send_msg(c, NSH_MSG_FD, i, 0, (uint32_t)o->n[0], c->slot[o->n[2]]);
	case NSH_OP_BIND_SOCKET: {
		/* the parent directory resolved (inside the root), the name bound through it */
		char buf[4096];
		const char *name;
		int pfd = open_parent(c, S(c, o->s[1]), !!(o->flags & NSH_F_DST_IN_ROOT), buf, sizeof(buf), &name);
		if (pfd < 0)
			return -1;
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		/* "/proc/self/fd/<dir>/<name>" without snprintf */
		fd_path(sa.sun_path, pfd);
		size_t dl = strlen(sa.sun_path), nl = strlen(name);
		if (dl + 1 + nl >= sizeof(sa.sun_path)) {
			xclose(pfd);
			errno = ENAMETOOLONG;
			return -1;
		}
		sa.sun_path[dl] = '/';
		memcpy(sa.sun_path + dl + 1, name, nl + 1);
		int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return xclose(pfd);
		unlinkat(pfd, name, 0);
		int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
		xclose(pfd);
		if (r < 0)
			return xclose(fd);
		xclose(c->slot[o->n[2]]);
		c->slot[o->n[2]] = fd;
		return 0;
	}
	case NSH_OP_OPEN: {
		int fd = resolve(c, S(c, o->s[1]), !!(o->flags & NSH_F_DST_IN_ROOT), (int)o->n[0], (mode_t)o->n[1]);
		if (fd < 0)
			return -1;
		xclose(c->slot[o->n[2]]);
		c->slot[o->n[2]] = fd;
		return 0;
	}
	case NSH_OP_OPEN_TREE: {
		int pfd = resolve(c, S(c, o->s[1]), !!(o->flags & NSH_F_DST_IN_ROOT), O_PATH, 0);
		if (pfd < 0)
			return -1;
		int fd = (int)syscall(SYS_open_tree, pfd, "", (unsigned)o->n[0] | AT_EMPTY_PATH | O_CLOEXEC);
		xclose(pfd);
		if (fd < 0)
			return -1;
		xclose(c->slot[o->n[2]]);
		c->slot[o->n[2]] = fd;
		return 0;
	}
	case NSH_OP_MOVE_MOUNT: {
		const char *dst = S(c, o->s[1]);
		int in_root = !!(o->flags & NSH_F_DST_IN_ROOT);
		if (prepare_target(c, o, dst, in_root) < 0)
			return -1;
		int dfd = resolve(c, dst, in_root, O_PATH, 0);
		if (dfd < 0)
			return -1;
		int r = (int)syscall(SYS_move_mount, c->slot[o->n[2]], "", dfd, "",
				     MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
		xclose(dfd);
		return r;
	}
	case NSH_OP_EXIT:
		_exit((int)o->n[0]);
	case NSH_OP_IFUP: {
		/* an ioctl on any socket of the namespace: no netlink needed for lo */
		const char *name = S(c, o->s[1]);
		struct ifreq ifr;
		if (strlen(name) >= sizeof ifr.ifr_name) {
			errno = ENAMETOOLONG;
			return -1;
		}
		memset(&ifr, 0, sizeof ifr);
		memcpy(ifr.ifr_name, name, strlen(name));
		int sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (sk < 0)
			return -1;
		int r = ioctl(sk, SIOCGIFFLAGS, &ifr);
		if (r == 0 && !(ifr.ifr_flags & IFF_UP)) {
			ifr.ifr_flags |= IFF_UP;
			r = ioctl(sk, SIOCSIFFLAGS, &ifr);
		}
		xclose(sk);
		return r;
	}
	case NSH_OP_SEND_PID: {
		struct nsh_msg m = { NSH_MSG_PID, i, 0, 0 };
		struct iovec iov = { &m, sizeof(m) };
		union { char buf[CMSG_SPACE(sizeof(struct ucred))]; struct cmsghdr align; } u;
		memset(&u, 0, sizeof(u));
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_CREDENTIALS;
		cm->cmsg_len = CMSG_LEN(sizeof(struct ucred));
		struct ucred cr = { getpid(), getuid(), getgid() };
		memcpy(CMSG_DATA(cm), &cr, sizeof(cr));
		return sendmsg(c->sync, &mh, MSG_NOSIGNAL) < 0 ? -1 : 0;
	}
	}
	errno = EINVAL;
	return -1;
}

static int creation_op(uint32_t kind)
{
	return kind == NSH_OP_MKDIR || kind == NSH_OP_MKNOD || kind == NSH_OP_SYMLINK;
}

__attribute__((noreturn)) static void child_main(struct ctx *c)
{
	reset_signal_handlers();
	umask(0);
	for (uint32_t i = 0; i < c->p.nops; i++) {
		const struct nsh_op *o = &c->p.ops[i];
		if (run_op(c, i) == 0)
			continue;
		int e = errno;
		if (o->flags & NSH_F_IGNORE_ERRORS)
			continue;
		if ((o->flags & NSH_F_OPTIONAL) && (e == ENOENT || (e == EEXIST && creation_op(o->kind))))
			continue;
		if (o->kind == NSH_OP_EXEC && (o->flags & NSH_F_FALLBACK) &&
		    (e == ENOENT || e == ENOTDIR || e == EACCES))
			continue;
		send_msg(c, NSH_MSG_ERROR, i, e, 0, -1);
		_exit(o->kind == NSH_OP_EXEC ? 127 : 1);
	}
	/* a plan must end in EXEC; falling off the end is a planning bug */
	send_msg(c, NSH_MSG_ERROR, c->p.nops, ENOEXEC, 0, -1);
	_exit(1);
}

/* ------------------------------------------------------------------------ */
/* Exports, called through bun:ffi from the (threaded) Bun process           */

uint32_t nsh_abi_version(void) { return NSH_ABI_VERSION; }
uint32_t nsh_op_size(void) { return (uint32_t)sizeof(struct nsh_op); }
uint32_t nsh_header_size(void) { return (uint32_t)sizeof(struct nsh_header); }
uint32_t nsh_msg_size(void) { return (uint32_t)sizeof(struct nsh_msg); }

int nsh_spawn(const uint8_t *buf, uint64_t len, int32_t *fds_out)
{
	struct ctx c;
	int r = plan_parse(&c.p, buf, len, 0);
	if (r < 0)
		return r;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	int one = 1;
	setsockopt(sv[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
	/* The child must not run any of the parent's signal handlers before it
	 * has reset them: block everything across the clone. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int cgfd = c.p.h->cgroup_fd;
	int join_self = 0;
	pid_t pid = -2;
	if (cgfd >= 0)
		pid = fork_into_cgroup(c.p.h->clone_flags, cgfd);
	if (pid == -2) {
		join_self = cgfd >= 0;
		pid = raw_fork(c.p.h->clone_flags);
	}
	if (pid == 0) {
		close(sv[0]);
		if (join_self && join_cgroup_self(cgfd) < 0) {
			c.sync = sv[1];
			send_msg(&c, NSH_MSG_ERROR, 0xffffffffu, errno, 0, -1);
			_exit(1);
		}
		c.sync = sv[1];
		c.rootfd = -1;
		c.console = -1;
		for (int k = 0; k < NSH_FD_SLOTS; k++)
			c.slot[k] = -1;
		child_main(&c);
	}
	int e = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return -e;
	}
	fds_out[0] = sv[0];
	fds_out[1] = -1;
	return pid;
}

int nsh_clone_tree(const char *path, int recursive)
{
	int fd = (int)syscall(SYS_open_tree, AT_FDCWD, path,
			      OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0));
	return fd < 0 ? -errno : fd;
}

/* Create files as another owner from this thread only (copy-to into a
 * user-namespaced machine: its idmapped root refuses ids it cannot map).
 * The kernel drops the file capabilities from the effective set when fsuid
 * leaves 0: raise them again from the permitted set. */
int nsh_set_fsids(uint32_t uid, uint32_t gid)
{
	syscall(SYS_setfsgid, gid);
	syscall(SYS_setfsuid, uid);
	if ((uint32_t)syscall(SYS_setfsuid, -1) != uid || (uint32_t)syscall(SYS_setfsgid, -1) != gid)
		return -EPERM;
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &hdr, d) < 0)
		return -errno;
	for (int i = 0; i < 2; i++)
		d[i].effective = d[i].permitted;
	if (syscall(SYS_capset, &hdr, d) < 0)
		return -errno;
	return 0;
}

int nsh_set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

int nsh_set_cloexec(int fd, int on)
{
	int fl = fcntl(fd, F_GETFD);
	if (fl < 0)
		return -errno;
	fl = on ? (fl | FD_CLOEXEC) : (fl & ~FD_CLOEXEC);
	return fcntl(fd, F_SETFD, fl) < 0 ? -errno : 0;
}

int nsh_openat2(int dirfd, const char *path, uint64_t flags, uint32_t mode, uint64_t resolve)
{
	struct nsh_open_how how = { flags | O_CLOEXEC, (flags & (O_CREAT | O_TMPFILE)) ? mode : 0, resolve };
	int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	return fd < 0 ? -errno : fd;
}

int nsh_pty_peer(int master)
{
	int fd = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int nsh_set_winsize(int fd, uint16_t rows, uint16_t cols)
{
	struct winsize ws = { .ws_row = rows, .ws_col = cols };
	return ioctl(fd, TIOCSWINSZ, &ws) < 0 ? -errno : 0;
}

int nsh_get_winsize(int fd, uint16_t *out)
{
	struct winsize ws;
	if (ioctl(fd, TIOCGWINSZ, &ws) < 0)
		return -errno;
	out[0] = ws.ws_row;
	out[1] = ws.ws_col;
	return 0;
}

int nsh_tty_raw(int fd, uint8_t *saved)
{
	struct termios t;
	if (tcgetattr(fd, &t) < 0)
		return -errno;
	memcpy(saved, &t, sizeof(t));
	cfmakeraw(&t);
	return tcsetattr(fd, TCSANOW, &t) < 0 ? -errno : 0;
}

int nsh_tty_restore(int fd, const uint8_t *saved)
{
	struct termios t;
	memcpy(&t, saved, sizeof(t));
	return tcsetattr(fd, TCSANOW, &t) < 0 ? -errno : 0;
}

int nsh_recv(int fd, uint8_t *msg_out, int32_t *fd_out)
{
	union { char buf[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))]; struct cmsghdr align; } u;
	struct iovec iov = { msg_out, NSH_MSG_SIZE };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	*fd_out = -1;
	ssize_t r;
	do
		r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET)
			continue;
		if (cm->cmsg_type == SCM_RIGHTS)
			memcpy(fd_out, CMSG_DATA(cm), sizeof(int));
		else if (cm->cmsg_type == SCM_CREDENTIALS && r == NSH_MSG_SIZE) {
			struct ucred cr;
			memcpy(&cr, CMSG_DATA(cm), sizeof(cr));
			struct nsh_msg *m = (struct nsh_msg *)(void *)msg_out;
			if (m->type == NSH_MSG_PID)
				m->arg = (uint32_t)cr.pid;
		}
	}
	return (int)r;
}

int nsh_send(int fd, uint8_t byte, int pass_fd)
{
	union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
	struct iovec iov = { &byte, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (pass_fd >= 0) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
	}
	ssize_t r;
	do
		r = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : 0;
}

struct waiter { pid_t pid; int fd; };

static void *wait_thread(void *arg)
{
	struct waiter w = *(struct waiter *)arg;
	free(arg);
	int st = 0;
	while (waitpid(w.pid, &st, __WALL) < 0) {
		if (errno != EINTR) {
			st = -errno;
			break;
		}
	}
	ssize_t r;
	do
		r = write(w.fd, &st, sizeof(st));
	while (r < 0 && errno == EINTR);
	close(w.fd);
	return NULL;
}

int nsh_wait_async(int pid, int wfd)
{
	struct waiter *w = malloc(sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->pid = pid;
	w->fd = wfd;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 64 * 1024);
	/* the waiter thread must not take signals meant for the JS thread */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_t t;
	int r = pthread_create(&t, &at, wait_thread, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&at);
	if (r != 0) {
		free(w);
		return -r;
	}
	return 0;
}

int nsh_wait(int pid, int timeout_ms)
{
	int st;
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd >= 0) {
		struct pollfd p = { pfd, POLLIN, 0 };
		int r;
		do
			r = poll(&p, 1, timeout_ms);
		while (r < 0 && errno == EINTR);
		close(pfd);
		if (r == 0)
			return -ETIMEDOUT;
	}
	for (int waited = 0;; waited++) {
		pid_t r = waitpid(pid, &st, pfd >= 0 ? __WALL : (__WALL | WNOHANG));
		if (r == pid)
			return st;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r == 0) {
			if (timeout_ms >= 0 && waited >= timeout_ms)
				return -ETIMEDOUT;
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
		}
	}
}

/* ------------------------------------------------------------------------ */
/* The machine supervisor: the same file built as a small executable with    */
/* -DNSH_SUPERVISOR. `spawnctl start` execs it from a memfd, hands it a plan  */
/* and stays only until the container runs. It is the container's parent:    */
/* it keeps the console (a log file and an attach socket), forwards a stop   */
/* request, and when the container ends it execs spawnctl again to clean up */
/* (or restart on reboot). It stays small so that a running machine costs     */
/* well under a MiB.                                                          */

#ifdef NSH_SUPERVISOR
#include <stdio.h>
#include <sys/signalfd.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>

#define SUP_CLIENTS 16
#define SUP_RING 16384
#define SUP_LOG_MAX (1 << 20)

struct sup {
	const char *name, *log_path, *sock_path;
	int ctl, plan_fd, exe_fd, kill_signal;
	const char *cgroup_procs[32];
	int ncg;
	/* the arguments between the program and __machine-exited: a dynamic
	 * loader's options and spawnctl's path, when --exe is a loader */
	const char *exe_args[8];
	int nexe_args;
	int console, peer, logfd, lsock, sfd, netns;
	off_t logsize;
	int clients[SUP_CLIENTS];
	char ring[SUP_RING];
	size_t ring_len, ring_pos;
};

static int sup_int(const char *s)
{
	return (int)strtol(s, NULL, 10);
}

static void sup_log_reopen(struct sup *S)
{
	if (S->logfd >= 0)
		close(S->logfd);
	S->logfd = S->log_path ? open(S->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
	struct stat st;
	S->logsize = (S->logfd >= 0 && nsh_fstat(S->logfd, &st) == 0) ? st.st_size : 0;
}

/*
 * One message to a console client: its type, the payload's length (u16 LE),
 * the payload (at most 4096 bytes). The length is in the message because a
 * client may read several at once (Bun's streams do).
 */
static int sup_client_send(int fd, uint8_t type, const char *buf, size_t n)
{
	char msg[4099];
	msg[0] = (char)type;
	msg[1] = (char)(n & 0xff);
	msg[2] = (char)(n >> 8);
	memcpy(msg + 3, buf, n);
	return send(fd, msg, n + 3, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 ? -1 : 0;
}

static void sup_output(struct sup *S, const char *buf, size_t n)
{
	if (S->logfd >= 0) {
		if (S->logsize + (off_t)n > SUP_LOG_MAX) {
			/* keep one old generation: NAME.console.1 */
			char old[4200];
			int k = snprintf(old, sizeof(old), "%s.1", S->log_path);
			if (k > 0 && (size_t)k < sizeof(old))
				rename(S->log_path, old);
			sup_log_reopen(S);
		}
		ssize_t w = write(S->logfd, buf, n);
		if (w > 0)
			S->logsize += w;
	}
	for (size_t i = 0; i < n; i++) {
		S->ring[S->ring_pos] = buf[i];
		S->ring_pos = (S->ring_pos + 1) % SUP_RING;
	}
	S->ring_len = S->ring_len + n > SUP_RING ? SUP_RING : S->ring_len + n;
	for (int c = 0; c < SUP_CLIENTS; c++) {
		if (S->clients[c] < 0)
			continue;
		if (sup_client_send(S->clients[c], NSH_CTL_CONSOLE_DATA, buf, n) < 0 && errno != EAGAIN) {
			close(S->clients[c]);
			S->clients[c] = -1;
		}
	}
}

/* the console's recent output to a client that just connected, as history
 * (the client decides what to make of it), then an empty history message */
static void sup_send_ring(struct sup *S, int fd)
{
	char chunk[4096];
	size_t start = (S->ring_pos + SUP_RING - S->ring_len) % SUP_RING;
	size_t left = S->ring_len;
	while (left > 0) {
		size_t n = left > sizeof chunk ? sizeof chunk : left;
		for (size_t i = 0; i < n; i++)
			chunk[i] = S->ring[(start + i) % SUP_RING];
		if (sup_client_send(fd, NSH_CTL_CONSOLE_HISTORY, chunk, n) < 0)
			return;
		start = (start + n) % SUP_RING;
		left -= n;
	}
	sup_client_send(fd, NSH_CTL_CONSOLE_HISTORY, chunk, 0);
}

static int sup_drain_console(struct sup *S)
{
	char buf[4096];
	for (;;) {
		ssize_t n = read(S->console, buf, sizeof(buf));
		if (n > 0) {
			sup_output(S, buf, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return n == 0 || errno != EAGAIN ? -1 : 0;
	}
}

static void sup_client_input(struct sup *S, int c)
{
	char msg[4097];
	ssize_t n = recv(S->clients[c], msg, sizeof(msg), MSG_DONTWAIT);
	if (n <= 0) {
		if (n < 0 && errno == EAGAIN)
			return;
		close(S->clients[c]);
		S->clients[c] = -1;
		return;
	}
	if (S->console < 0)
		return;
	if (msg[0] == NSH_CTL_CONSOLE_DATA) {
		const char *p = msg + 1;
		size_t left = (size_t)n - 1;
		for (int tries = 0; left > 0 && tries < 1000; tries++) {
			ssize_t w = write(S->console, p, left);
			if (w > 0) {
				p += w;
				left -= (size_t)w;
			} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
				break;
			} else {
				struct timespec ts = { 0, 1000000 };
				nanosleep(&ts, NULL);
			}
		}
	} else if (msg[0] == NSH_CTL_CONSOLE_WINSIZE && n >= 5) {
		uint16_t rc[2];
		memcpy(rc, msg + 1, 4);
		nsh_set_winsize(S->console, rc[0], rc[1]);
	}
}


/* A DHCPv4 responder for the host side of a machine's veth or zone bridge.
 * spawnctl decides everything (the address for the machine's MAC, router,
 * DNS, lease time); this only speaks the protocol, to one client MAC, so
 * several supervisors can serve one zone bridge side by side. */
struct dhcp_cfg {
	const char *iface;
	uint8_t mac[6];
	uint32_t addr, mask, router, dns[4];
	uint32_t lease, renew, rebind; /* seconds */
	int ndns;
	const char *hostname;
	int fd;
};

static int parse_ip(const char *s, uint32_t *out)
{
	unsigned a, b, c, d;
	char tail;
	if (sscanf(s, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) != 4 || a > 255 || b > 255 || c > 255 || d > 255)
		return -1;
	*out = htonl((a << 24) | (b << 16) | (c << 8) | d);
	return 0;
}

static int dhcp_open(struct dhcp_cfg *D)
{
	D->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (D->fd < 0)
		return -1;
	int one = 1;
	setsockopt(D->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(D->fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one));
	/* one socket per link: bound to the device, so replies leave through it */
	if (setsockopt(D->fd, SOL_SOCKET, SO_BINDTODEVICE, D->iface, (socklen_t)strlen(D->iface)) < 0)
		return -1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(67), .sin_addr = { INADDR_ANY } };
	return bind(D->fd, (struct sockaddr *)&a, sizeof(a));
}

static size_t dhcp_opt(uint8_t *p, uint8_t code, const void *data, size_t len)
{
	p[0] = code;
	p[1] = (uint8_t)len;
	memcpy(p + 2, data, len);
	return len + 2;
}

static void dhcp_input(struct dhcp_cfg *D)
{
	uint8_t pkt[1500];
	for (;;) {
		ssize_t n = recv(D->fd, pkt, sizeof(pkt), 0);
		if (n < 0)
			return;
		/* op=BOOTREQUEST, htype ethernet, hlen 6, the magic cookie */
		if (n < 240 || pkt[0] != 1 || pkt[1] != 1 || pkt[2] != 6 || memcmp(pkt + 236, "\x63\x82\x53\x63", 4) != 0)
			continue;
		if (memcmp(pkt + 28, D->mac, 6) != 0)
			continue; /* someone else's client (another machine in the zone) */
		int type = 0;
		uint32_t requested = 0;
		for (ssize_t i = 240; i < n;) {
			uint8_t code = pkt[i];
			if (code == 255)
				break;
			if (code == 0) {
				i++;
				continue;
			}
			if (i + 1 >= n || i + 2 + pkt[i + 1] > n)
				break;
			uint8_t len = pkt[i + 1];
			if (code == 53 && len == 1)
				type = pkt[i + 2];
			else if (code == 50 && len == 4)
				memcpy(&requested, pkt + i + 2, 4);
			i += 2 + len;
		}
		uint32_t ciaddr;
		memcpy(&ciaddr, pkt + 12, 4);
		int reply;
		if (type == 1)
			reply = 2; /* DISCOVER -> OFFER */
		else if (type == 3)
			reply = (requested == D->addr || (requested == 0 && ciaddr == D->addr)) ? 5 : 6; /* REQUEST -> ACK/NAK */
		else if (type == 8)
			reply = 5; /* INFORM -> ACK */
		else
			continue;
		uint8_t out[576];
		memset(out, 0, sizeof(out));
		out[0] = 2;
		out[1] = 1;
		out[2] = 6;
		memcpy(out + 4, pkt + 4, 4);   /* xid */
		memcpy(out + 10, pkt + 10, 2); /* flags */
		if (reply != 6)
			memcpy(out + 16, &D->addr, 4); /* yiaddr */
		memcpy(out + 20, &D->router, 4);       /* siaddr */
		memcpy(out + 28, pkt + 28, 16);        /* chaddr */
		memcpy(out + 236, "\x63\x82\x53\x63", 4);
		size_t o = 240;
		uint8_t t = (uint8_t)reply;
		o += dhcp_opt(out + o, 53, &t, 1);
		o += dhcp_opt(out + o, 54, &D->router, 4);
		if (reply != 6) {
			uint32_t lease = htonl(D->lease), t1 = htonl(D->renew), t2 = htonl(D->rebind);
			o += dhcp_opt(out + o, 51, &lease, 4);
			o += dhcp_opt(out + o, 58, &t1, 4);
			o += dhcp_opt(out + o, 59, &t2, 4);
			o += dhcp_opt(out + o, 1, &D->mask, 4);
			o += dhcp_opt(out + o, 3, &D->router, 4);
			if (D->ndns > 0)
				o += dhcp_opt(out + o, 6, D->dns, (size_t)D->ndns * 4);
			if (D->hostname && strlen(D->hostname) < 64)
				o += dhcp_opt(out + o, 12, D->hostname, strlen(D->hostname));
		}
		out[o++] = 255;
		struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(68), .sin_addr = { htonl(INADDR_BROADCAST) } };
		sendto(D->fd, out, o < 300 ? 300 : o, 0, (struct sockaddr *)&to, sizeof(to));
	}
}

static int dhcp_configure(struct dhcp_cfg *D, const char *spec)
{
	/* IFACE,MAC,ADDR/PREFIX,ROUTER,LEASE,RENEW,REBIND[,DNS...] (times in
	 * seconds) — all decided by spawnctl; the hostname comes separately */
	char buf[512];
	if (strlen(spec) >= sizeof(buf))
		return -1;
	strcpy(buf, spec);
	char *save = NULL, *f[12];
	int nf = 0;
	for (char *t = strtok_r(buf, ",", &save); t && nf < 12; t = strtok_r(NULL, ",", &save))
		f[nf++] = t;
	if (nf < 7)
		return -1;
	static char iface[32];
	snprintf(iface, sizeof(iface), "%s", f[0]);
	D->iface = iface;
	unsigned m[6];
	if (sscanf(f[1], "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
		return -1;
	for (int i = 0; i < 6; i++)
		D->mac[i] = (uint8_t)m[i];
	char *slash = strchr(f[2], '/');
	if (!slash)
		return -1;
	*slash = 0;
	int prefix = atoi(slash + 1);
	if (parse_ip(f[2], &D->addr) < 0 || parse_ip(f[3], &D->router) < 0 || prefix < 1 || prefix > 30)
		return -1;
	D->mask = htonl(0xffffffffu << (32 - prefix));
	char *end = NULL;
	D->lease = (uint32_t)strtoul(f[4], &end, 10);
	D->renew = (uint32_t)strtoul(f[5], &end, 10);
	D->rebind = (uint32_t)strtoul(f[6], &end, 10);
	if (!D->lease || !D->renew || !D->rebind)
		return -1;
	for (int i = 7; i < nf && D->ndns < 4; i++)
		if (parse_ip(f[i], &D->dns[D->ndns]) == 0)
			D->ndns++;
	return 0;
}

/* `--run-plan PLANFD SYNCFD`: run a plan in this very process, reporting on
 * SYNCFD as a cloned child does. spawnctl uses it for what joins a running
 * machine: the process that appears in the container is this sealed memfd,
 * not a copy of spawnctl (runc's CVE-2019-5736). */
static int run_plan_here(const char *pfd, const char *sfd)
{
	int planfd = sup_int(pfd), sync = sup_int(sfd);
	struct stat st;
	if (planfd < 0 || sync < 0 || nsh_fstat(planfd, &st) < 0 || st.st_size <= 0)
		return 1;
	uint8_t *buf = malloc((size_t)st.st_size);
	if (!buf || pread(planfd, buf, (size_t)st.st_size, 0) != st.st_size)
		return 1;
	close(planfd);
	struct ctx c;
	if (plan_parse(&c.p, buf, (uint64_t)st.st_size, 0) < 0)
		return 1;
	c.sync = sync;
	c.rootfd = -1;
	c.console = -1;
	for (int k = 0; k < NSH_FD_SLOTS; k++)
		c.slot[k] = -1;
	fcntl(sync, F_SETFD, FD_CLOEXEC);
	child_main(&c);
}

int main(int argc, char **argv)
{
	struct sup S;
	if (argc == 4 && !strcmp(argv[1], "--run-plan"))
		return run_plan_here(argv[2], argv[3]);
	struct dhcp_cfg D;
	const char *dhcp_spec = NULL;
	int dhcp_only = 0;
	pid_t parent = 0;
	memset(&D, 0, sizeof(D));
	D.fd = -1;
	memset(&S, 0, sizeof(S));
	S.ctl = S.plan_fd = S.exe_fd = S.console = S.peer = S.logfd = S.lsock = S.netns = -1;
	for (int c = 0; c < SUP_CLIENTS; c++)
		S.clients[c] = -1;
	for (int i = 1; i < argc; i += 2) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
		if (!strcmp(k, "--dhcp-only")) {
			/* the one flag without a value */
			dhcp_only = 1;
			i--;
			continue;
		}
		if (!strcmp(k, "--name")) S.name = v;
		else if (!strcmp(k, "--log")) S.log_path = v;
		else if (!strcmp(k, "--socket")) S.sock_path = v;
		else if (!strcmp(k, "--ctl")) S.ctl = sup_int(v);
		else if (!strcmp(k, "--plan")) S.plan_fd = sup_int(v);
		else if (!strcmp(k, "--exe")) S.exe_fd = sup_int(v);
		else if (!strcmp(k, "--exe-arg") && S.nexe_args < 8) S.exe_args[S.nexe_args++] = v;
		else if (!strcmp(k, "--kill-signal")) S.kill_signal = sup_int(v);
		else if (!strcmp(k, "--self")) close(sup_int(v));
		else if (!strcmp(k, "--cgroup-procs") && S.ncg < 32) S.cgroup_procs[S.ncg++] = v;
		else if (!strcmp(k, "--dhcp")) dhcp_spec = v;
		else if (!strcmp(k, "--dhcp-hostname")) D.hostname = v;
		else if (!strcmp(k, "--parent")) parent = (pid_t)sup_int(v);
	}
	if (dhcp_spec && dhcp_configure(&D, dhcp_spec) < 0) {
		fprintf(stderr, "nsh-supervisor: bad --dhcp %s\n", dhcp_spec);
		return 2;
	}
	if (dhcp_only) {
		/* the DHCP responder of a foreground `spawnctl run`: lives as long as
		 * it. spawnctl made the socket (bound to the link) before the
		 * container could ask, and hands it over as stdin: what came before
		 * we ran waits there. */
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		/* spawnctl may have gone before the line above */
		if (parent > 0 && getppid() != parent)
			return 1;
		if (!dhcp_spec)
			return 2;
		D.fd = 0;
		nsh_set_nonblock(0, 1);
		for (;;) {
			struct pollfd p = { D.fd, POLLIN, 0 };
			if (poll(&p, 1, -1) > 0)
				dhcp_input(&D);
		}
	}
	if (!S.name || S.ctl < 0 || S.plan_fd < 0 || S.exe_fd < 0) {
		fprintf(stderr, "nsh-supervisor: missing arguments\n");
		return 2;
	}
	setsid();
	signal(SIGPIPE, SIG_IGN);
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGCHLD);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGHUP);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	S.sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);

	/* start the container from the plan */
	struct stat st;
	if (nsh_fstat(S.plan_fd, &st) < 0)
		return 1;
	uint8_t *plan = malloc((size_t)st.st_size);
	if (!plan || pread(S.plan_fd, plan, (size_t)st.st_size, 0) != st.st_size)
		return 1;
	close(S.plan_fd);
	int32_t fds[2];
	/* the child must not see the signals we block here: nsh_spawn resets them */
	pid_t pid = nsh_spawn(plan, (uint64_t)st.st_size, fds);
	free(plan);
	int32_t reply[2] = { pid, 0 };
	if (pid < 0) {
		send(S.ctl, reply, sizeof(reply), MSG_NOSIGNAL);
		return 1;
	}
	{
		struct iovec iov = { reply, sizeof(reply) };
		union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
		memset(&u, 0, sizeof(u));
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fds[0], sizeof(int));
		sendmsg(S.ctl, &mh, MSG_NOSIGNAL);
		close(fds[0]);
	}
	/* spawnctl drives the set-up over the sync socket, then gives us the
	 * console and says go; EOF means it gave up */
	for (;;) {
		uint8_t b = 0;
		int fd = recv_fd(S.ctl, &b);
		if (fd < 0 && errno == EPIPE) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			return 1;
		}
		if (b == NSH_CTL_LINKS) {
			/* the links exist now: listen before the container may ask */
			char r = NSH_CTL_LINKS_OK;
			if (!dhcp_spec || dhcp_open(&D) < 0) {
				r = NSH_CTL_LINKS_ERROR;
				if (D.fd >= 0)
					close(D.fd);
				D.fd = -1;
			}
			if (send(S.ctl, &r, 1, MSG_NOSIGNAL) != 1)
				return 1;
		} else if (b == NSH_CTL_NETNS && fd >= 0) {
			/* the container's netns, kept so that moved interfaces can be
			 * given back before it goes; inherited by the clean-up */
			S.netns = fd;
			fcntl(fd, F_SETFD, 0);
		} else if (b == NSH_CTL_CONSOLE && fd >= 0) {
			S.console = fd;
			nsh_set_nonblock(fd, 1);
			/* our own slave keeps the console alive across agetty/vhangup */
			S.peer = nsh_pty_peer(fd);
		} else if (b == NSH_CTL_GO) {
			break;
		} else if (fd >= 0) {
			close(fd);
		}
	}
	close(S.ctl);
	/* leave the starter's cgroup (a login session may be torn down with it);
	 * done after the handshake, as a move may wait for an RCU grace period */
	for (int i = 0; i < S.ncg; i++) {
		int f = open(S.cgroup_procs[i], O_WRONLY | O_CLOEXEC);
		if (f >= 0) {
			ssize_t w = write(f, "0", 1);
			(void)w;
			close(f);
		}
	}
	sup_log_reopen(&S);
	if (S.sock_path) {
		struct sockaddr_un a = { .sun_family = AF_UNIX };
		if (strlen(S.sock_path) < sizeof(a.sun_path)) {
			strcpy(a.sun_path, S.sock_path);
			S.lsock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			unlink(S.sock_path);
			if (S.lsock >= 0 && (bind(S.lsock, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(S.lsock, 8) < 0)) {
				close(S.lsock);
				S.lsock = -1;
			}
			if (S.lsock >= 0)
				chmod(S.sock_path, 0600);
		}
	}

	int status = 0, terms = 0;
	for (;;) {
		struct pollfd p[4 + SUP_CLIENTS];
		int np = 0;
		p[np++] = (struct pollfd){ S.sfd, POLLIN, 0 };
		int ci = -1, li = -1, di = -1;
		if (D.fd >= 0) {
			di = np;
			p[np++] = (struct pollfd){ D.fd, POLLIN, 0 };
		}
		if (S.console >= 0) {
			ci = np;
			p[np++] = (struct pollfd){ S.console, POLLIN, 0 };
		}
		if (S.lsock >= 0) {
			li = np;
			p[np++] = (struct pollfd){ S.lsock, POLLIN, 0 };
		}
		int map[SUP_CLIENTS];
		int first_client = np;
		for (int c = 0; c < SUP_CLIENTS; c++) {
			if (S.clients[c] < 0)
				continue;
			map[np - first_client] = c;
			p[np++] = (struct pollfd){ S.clients[c], POLLIN, 0 };
		}
		if (poll(p, (nfds_t)np, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			int done = 0;
			while (read(S.sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGCHLD) {
					int stt;
					pid_t r;
					while ((r = waitpid(-1, &stt, WNOHANG)) > 0)
						if (r == pid) {
							status = stt;
							done = 1;
						}
				} else {
					/* a stop request for the supervisor: ask the container
					 * once with its kill signal, then kill it */
					terms++;
					kill(pid, terms == 1 && S.kill_signal > 0 ? S.kill_signal : SIGKILL);
				}
			}
			if (done)
				break;
		}
		if (di >= 0 && (p[di].revents & POLLIN))
			dhcp_input(&D);
		if (ci >= 0 && (p[ci].revents & (POLLIN | POLLHUP)))
			sup_drain_console(&S);
		if (li >= 0 && (p[li].revents & POLLIN)) {
			int fd = accept4(S.lsock, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
			if (fd >= 0) {
				int slot = -1;
				for (int c = 0; c < SUP_CLIENTS; c++)
					if (S.clients[c] < 0) {
						slot = c;
						break;
					}
				if (slot < 0) {
					close(fd);
				} else {
					S.clients[slot] = fd;
					sup_send_ring(&S, fd);
				}
			}
		}
		for (int k = first_client; k < np; k++)
			if (p[k].revents & (POLLIN | POLLHUP | POLLERR))
				sup_client_input(&S, map[k - first_client]);
	}
	/* the container is gone: flush what it wrote, drop the clients */
	if (S.peer >= 0)
		close(S.peer);
	if (S.console >= 0)
		sup_drain_console(&S);
	for (int c = 0; c < SUP_CLIENTS; c++)
		if (S.clients[c] >= 0)
			close(S.clients[c]);
	if (S.lsock >= 0) {
		close(S.lsock);
		unlink(S.sock_path);
	}
	if (S.logfd >= 0)
		close(S.logfd);
	close(S.sfd);
	sigprocmask(SIG_UNBLOCK, &ss, NULL);
	char st_buf[16], ns_buf[16];
	snprintf(st_buf, sizeof(st_buf), "%d", status);
	snprintf(ns_buf, sizeof(ns_buf), "%d", S.netns);
	char *args[8 + 6];
	int na = 0;
	args[na++] = "spawnctl";
	for (int i = 0; i < S.nexe_args; i++)
		args[na++] = (char *)S.exe_args[i];
	args[na++] = "__machine-exited";
	args[na++] = (char *)S.name;
	args[na++] = st_buf;
	args[na++] = ns_buf;
	args[na] = NULL;
	extern char **environ;
	syscall(SYS_execveat, S.exe_fd, "", args, environ, AT_EMPTY_PATH);
	fprintf(stderr, "nsh-supervisor: cannot run spawnctl to clean up machine %s: %s\n", S.name, strerror(errno));
	return 1;
}
#endif

#ifdef NSH_INIT
/* -DNSH_INIT, linked statically: the stub init of --as-pid2, exec'd from a
 * sealed memfd by PID 1 of the container after it forked the payload (so it
 * needs no libraries from the container's tree). argv[1] is the payload's
 * pid; the signal mask (all blocked) comes through the exec. */
int main(int argc, char **argv)
{
	if (argc < 2)
		return 1;
	/* the exec made us dumpable again: nothing in the container may open our
	 * /proc/1/fd or memory without CAP_SYS_PTRACE */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	prctl(PR_SET_NAME, (unsigned long)"(sd-stubinit)", 0, 0, 0);
	stub_init((pid_t)atoi(argv[1]));
	return 1;
}
#endif
