/*
 * shift: user namespace helpers that run in the spawnctl process itself,
 * linked into the same shared object as nsh.c (not into the supervisor).
 *
 *   nsh_shift_tree       recursive ownership shift of an OS tree (the
 *                        --private-users-ownership=chown case), including
 *                        POSIX ACLs and file capabilities
 *   nsh_make_userns      a throw-away user namespace with the given maps,
 *                        returned as an fd
 *   nsh_idmapped_tree    a detached, idmapped clone of a mount
 *
 * The tree we shift belongs to a container and must be treated as hostile:
 * every step works on file descriptors, each entry is opened with O_NOFOLLOW
 * relative to its already opened parent, and the stat that decides what to
 * do is taken from the opened fd, so a name swapped for a symlink between
 * two calls is handled as the symlink it now is, never followed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "compat.h"
#include "nsh_abi.h"

#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
#ifndef STATX_MNT_ID
#define STATX_MNT_ID 0x00001000U
#endif
#ifndef STATX_BASIC_STATS
#define STATX_BASIC_STATS 0x000007ffU
#endif
#ifndef AT_STATX_DONT_SYNC
#define AT_STATX_DONT_SYNC 0x4000
#endif

/* Our own copy of the kernel's struct statx: glibc 2.36 hides stx_mnt_id in
 * padding, and <linux/stat.h> clashes with <sys/stat.h>. */
struct nsh_statx {
	uint32_t mask, blksize;
	uint64_t attributes;
	uint32_t nlink, uid, gid;
	uint16_t mode, pad1;
	uint64_t ino, size, blocks, attributes_mask;
	struct { int64_t sec; uint32_t nsec; int32_t pad; } atime, btime, ctime, mtime;
	uint32_t rdev_major, rdev_minor, dev_major, dev_minor;
	uint64_t mnt_id;
	uint64_t spare[13];
};

struct nsh_mount_attr {
	uint64_t attr_set, attr_clr, propagation, userns_fd;
};

/* ---- the ownership shift -------------------------------------------------- */

/* The top directory is chowned into this range while a shift is under way
 * and gets its final owner last, so an interrupted shift is recognisable:
 * the root no longer looks owned by any valid range (nspawn does the same). */
#define SHIFT_BUSY_BASE 0xFFFE0000u
/* Each level holds a directory fd and a DIR buffer; deeper trees are refused. */
#define SHIFT_MAX_DEPTH 512

#define VFS_CAP_REVISION_MASK 0xFF000000u
#define VFS_CAP_REVISION_1 0x01000000u
#define VFS_CAP_REVISION_2 0x02000000u
#define VFS_CAP_REVISION_3 0x03000000u
#define VFS_CAP_FLAGS_EFFECTIVE 0x000001u

/* POSIX ACL xattr format: a u32 version header, then {u16 tag, u16 perm, u32 id} */
#define ACL_XATTR_VERSION 2u
#define ACL_TAG_USER 0x02u
#define ACL_TAG_GROUP 0x08u

static const char XATTR_ACL_ACCESS[] = "system.posix_acl_access";
static const char XATTR_ACL_DEFAULT[] = "system.posix_acl_default";
static const char XATTR_CAPS[] = "security.capability";

static char shift_error_path[8192];

struct shift_ctx {
	uint32_t shift;
	uint64_t mnt_id;   /* the mount we stay on */
	int have_mnt_id;   /* else compare st_dev */
	uint32_t dev_major, dev_minor;
	uint64_t visited, changed;
	char path[8192];   /* the current path, for the error message */
	size_t path_len;
};

static uint32_t shifted(uint32_t shift, uint32_t id)
{
	return shift + (id & 0xFFFFu);
}

static int nsh_statx(int dirfd, const char *name, int flags, struct nsh_statx *st)
{
	if (syscall(SYS_statx, dirfd, name, flags | AT_STATX_DONT_SYNC, STATX_BASIC_STATS | STATX_MNT_ID, st) < 0)
		return -errno;
	return 0;
}

static int same_mount(const struct shift_ctx *c, const struct nsh_statx *st)
{
	if (c->have_mnt_id && (st->mask & STATX_MNT_ID))
		return st->mnt_id == c->mnt_id;
	return st->dev_major == c->dev_major && st->dev_minor == c->dev_minor;
}

static int needs_change(const struct shift_ctx *c, const struct nsh_statx *st)
{
	return st->uid != shifted(c->shift, st->uid) || st->gid != shifted(c->shift, st->gid);
}

/* Append "/name" to the error path (truncated if it does not fit). */
static size_t path_push(struct shift_ctx *c, const char *name)
{
	size_t old = c->path_len;
	int n = snprintf(c->path + old, sizeof c->path - old, "/%s", name);
	if (n > 0)
		c->path_len = (size_t)n >= sizeof c->path - old ? sizeof c->path - 1 : old + (size_t)n;
	return old;
}

static void path_pop(struct shift_ctx *c, size_t len)
{
	c->path_len = len;
	c->path[len] = '\0';
}

static int fail_at(struct shift_ctx *c, int err)
{
	memcpy(shift_error_path, c->path, c->path_len + 1);
	return err;
}

/* An inode to patch: a real fd (directories) or an O_PATH fd (everything
 * else: opening a device node or fifo for reading has side effects). The
 * *xattr and chmod calls do not take O_PATH fds, so those go through the
 * /proc/self/fd magic link, which names the inode itself. */
struct node {
	int fd, opath;
	char proc[40];
};

static ssize_t node_list(struct node *n, char *buf, size_t size)
{
	ssize_t r = n->opath ? listxattr(n->proc, buf, size) : flistxattr(n->fd, buf, size);
	return r < 0 ? -errno : r;
}

static ssize_t node_get(struct node *n, const char *name, void *buf, size_t size)
{
	ssize_t r = n->opath ? getxattr(n->proc, name, buf, size) : fgetxattr(n->fd, name, buf, size);
	return r < 0 ? -errno : r;
}

static int node_set(struct node *n, const char *name, const void *buf, size_t size)
{
	int r = n->opath ? setxattr(n->proc, name, buf, size, 0) : fsetxattr(n->fd, name, buf, size, 0);
	return r < 0 ? -errno : 0;
}

static int node_chmod(struct node *n, mode_t mode)
{
	int r = n->opath ? chmod(n->proc, mode) : fchmod(n->fd, mode);
	return r < 0 ? -errno : 0;
}

static int has_name(const char *list, ssize_t len, const char *name)
{
	for (ssize_t i = 0; i < len; i += (ssize_t)strlen(list + i) + 1)
		if (strcmp(list + i, name) == 0)
			return 1;
	return 0;
}

/* Which of the three xattrs we care about the inode has: bit 0 access ACL,
 * bit 1 default ACL, bit 2 capabilities. */
static int interesting_xattrs(struct node *n)
{
	char small[1024];
	char *list = small;
	ssize_t len = node_list(n, small, sizeof small);
	if (len == -ERANGE) {
		ssize_t want = node_list(n, NULL, 0);
		if (want < 0)
			return (int)want;
		list = malloc((size_t)want + 1);
		if (!list)
			return -ENOMEM;
		len = node_list(n, list, (size_t)want);
	}
	int r;
	if (len == -ENOTSUP || len == -ENODATA)
		r = 0;
	else if (len < 0)
		r = (int)len;
	else
		r = (has_name(list, len, XATTR_ACL_ACCESS) ? 1 : 0) | (has_name(list, len, XATTR_ACL_DEFAULT) ? 2 : 0) |
		    (has_name(list, len, XATTR_CAPS) ? 4 : 0);
	if (list != small)
		free(list);
	return r;
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* Shift the user and group entries of one ACL; rewrites it only if an id moved. */
static int shift_acl(struct node *n, const char *name, uint32_t shift)
{
	uint8_t small[512];
	uint8_t *buf = small;
	ssize_t len = node_get(n, name, small, sizeof small);
	if (len == -ERANGE) {
		ssize_t want = node_get(n, name, NULL, 0);
		if (want < 0)
			return (int)want;
		buf = malloc((size_t)want);
		if (!buf)
			return -ENOMEM;
		len = node_get(n, name, buf, (size_t)want);
	}
	int r = 0;
	if (len == -ENODATA)
		goto out;
	if (len < 0) {
		r = (int)len;
		goto out;
	}
	if (len < 4 || (len - 4) % 8 != 0 || get_le32(buf) != ACL_XATTR_VERSION) {
		r = -EINVAL;
		goto out;
	}
	int moved = 0;
	for (ssize_t off = 4; off < len; off += 8) {
		unsigned tag = (unsigned)buf[off] | (unsigned)buf[off + 1] << 8;
		if (tag != ACL_TAG_USER && tag != ACL_TAG_GROUP)
			continue;
		uint32_t id = get_le32(buf + off + 4), nid = shifted(shift, id);
		if (nid != id) {
			put_le32(buf + off + 4, nid);
			moved = 1;
		}
	}
	if (moved)
		r = node_set(n, name, buf, (size_t)len);
out:
	if (buf != small)
		free(buf);
	return r;
}

struct saved_caps {
	int present;
	uint8_t v[24];
	size_t len;
};

static int read_caps(struct node *n, struct saved_caps *caps)
{
	ssize_t len = node_get(n, XATTR_CAPS, caps->v, sizeof caps->v);
	if (len == -ENODATA)
		return 0;
	if (len < 0)
		return (int)len;
	caps->present = 1;
	caps->len = (size_t)len;
	return 0;
}

/* Write the capabilities chown() removed back, with the root id moved into the
 * new range: the kernel honours a v3 capability only for the namespace whose
 * root is rootid; v1 and v2 have an implied rootid of 0. */
static int restore_caps(struct node *n, const struct saved_caps *caps, uint32_t shift)
{
	if (!caps->present)
		return 0;
	if (caps->len < 4)
		return -EINVAL;
	uint32_t magic = get_le32(caps->v), rev = magic & VFS_CAP_REVISION_MASK;
	size_t want = rev == VFS_CAP_REVISION_1 ? 12 : rev == VFS_CAP_REVISION_2 ? 20 : rev == VFS_CAP_REVISION_3 ? 24 : 0;
	if (!want || caps->len != want)
		return -EINVAL;
	uint32_t root = rev == VFS_CAP_REVISION_3 ? get_le32(caps->v + 20) : 0;
	uint32_t nroot = shifted(shift, root);
	uint8_t out[24];
	memset(out, 0, sizeof out);
	memcpy(out, caps->v, rev == VFS_CAP_REVISION_1 ? 12 : 20);
	if (nroot == 0) {
		/* back in the host's range: v2 (or the original v1) is exactly what was there before a shift */
		if (rev != VFS_CAP_REVISION_3)
			return node_set(n, XATTR_CAPS, caps->v, caps->len);
		put_le32(out, VFS_CAP_REVISION_2 | (magic & VFS_CAP_FLAGS_EFFECTIVE));
		return node_set(n, XATTR_CAPS, out, 20);
	}
	put_le32(out, VFS_CAP_REVISION_3 | (magic & VFS_CAP_FLAGS_EFFECTIVE));
	put_le32(out + 20, nroot);
	return node_set(n, XATTR_CAPS, out, 24);
}

/* Give one inode its shifted owner. The ACLs are rewritten before the owner,
 * so an inode whose owner is right also has its ACLs right, and skipping it
 * is safe. chown() drops setuid/setgid and security.capability: those are
 * saved first and put back afterwards. */
static int patch(struct shift_ctx *c, struct node *n, const struct nsh_statx *st)
{
	uint32_t nu = shifted(c->shift, st->uid), ng = shifted(c->shift, st->gid);
	if (nu == st->uid && ng == st->gid)
		return 0;
	int lnk = S_ISLNK(st->mode), r;
	struct saved_caps caps = { 0 };
	if (!lnk) { /* no ACLs or capabilities on symlinks */
		int x = interesting_xattrs(n);
		if (x < 0)
			return x;
		if ((x & 1) && (r = shift_acl(n, XATTR_ACL_ACCESS, c->shift)) < 0)
			return r;
		if ((x & 2) && (r = shift_acl(n, XATTR_ACL_DEFAULT, c->shift)) < 0)
			return r;
		if ((x & 4) && (r = read_caps(n, &caps)) < 0)
			return r;
	}
	if (fchownat(n->fd, "", nu, ng, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	/* symlinks have no mode of their own to restore */
	if (!lnk && (st->mode & (S_ISUID | S_ISGID)) && (r = node_chmod(n, st->mode & 07777)) < 0)
		return r;
	if ((r = restore_caps(n, &caps, c->shift)) < 0)
		return r;
	c->changed++;
	return 0;
}

static int open_node(struct node *n, int fd, int opath)
{
	n->fd = fd;
	n->opath = opath;
	snprintf(n->proc, sizeof n->proc, "/proc/self/fd/%d", fd);
	return 0;
}

struct frame {
	DIR *dir;
	struct nsh_statx st;
	size_t path_len; /* the error path's length before this directory's name */
};

/* Open a directory entry we are about to descend into. Returns 1 with *fd
 * set, 0 if it is no longer a directory on our mount (the caller handles it
 * as a plain entry), or -errno. */
static int open_subdir(struct shift_ctx *c, int dirfd, const char *name, struct nsh_statx *st, int *fd)
{
	*fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NOATIME | O_NONBLOCK | O_CLOEXEC);
	if (*fd < 0)
		return errno == ENOTDIR || errno == ELOOP || errno == ENOENT ? 0 : -errno;
	int r = nsh_statx(*fd, "", AT_EMPTY_PATH, st);
	if (r == 0 && S_ISDIR(st->mode) && same_mount(c, st))
		return 1;
	close(*fd);
	*fd = -1;
	return r;
}

/* A non-directory entry (or one that stopped being a directory). */
static int patch_entry(struct shift_ctx *c, int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	struct nsh_statx st;
	int r = nsh_statx(fd, "", AT_EMPTY_PATH, &st);
	if (r == 0 && same_mount(c, &st)) {
		struct node n;
		open_node(&n, fd, 1);
		c->visited++;
		r = patch(c, &n, &st);
	}
	close(fd);
	return r;
}

static int shift_walk(struct shift_ctx *c, int topfd, const struct nsh_statx *topst)
{
	struct frame *stack = calloc(SHIFT_MAX_DEPTH, sizeof *stack);
	if (!stack) {
		close(topfd);
		return -ENOMEM;
	}
	int depth = 0, r = 0;
	stack[0].dir = fdopendir(topfd);
	if (!stack[0].dir) {
		r = -errno;
		close(topfd);
		goto out;
	}
	stack[0].st = *topst;
	stack[0].path_len = c->path_len;
	c->visited++;

	while (depth >= 0) {
		struct frame *f = &stack[depth];
		errno = 0;
		struct dirent *de = readdir(f->dir);
		if (!de) {
			if (errno) {
				r = fail_at(c, -errno);
				goto out;
			}
			/* children done: now the directory itself (the top one last of all) */
			struct node n;
			open_node(&n, dirfd(f->dir), 0);
			if ((r = patch(c, &n, &f->st)) < 0) {
				r = fail_at(c, r);
				goto out;
			}
			closedir(f->dir);
			f->dir = NULL;
			path_pop(c, f->path_len);
			depth--;
			continue;
		}
		const char *name = de->d_name;
		if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')))
			continue;
		size_t saved = path_push(c, name);
		int dfd = dirfd(f->dir);
		struct nsh_statx st;
		r = nsh_statx(dfd, name, AT_SYMLINK_NOFOLLOW, &st);
		if (r == -ENOENT) {
			path_pop(c, saved);
			continue;
		}
		if (r < 0) {
			r = fail_at(c, r);
			goto out;
		}
		if (!same_mount(c, &st)) { /* a mount point: not ours to change */
			path_pop(c, saved);
			continue;
		}
		if (S_ISDIR(st.mode)) {
			int sub;
			r = open_subdir(c, dfd, name, &st, &sub);
			if (r < 0) {
				r = fail_at(c, r);
				goto out;
			}
			if (r > 0) {
				if (depth + 1 >= SHIFT_MAX_DEPTH) {
					close(sub);
					r = fail_at(c, -ELOOP);
					goto out;
				}
				struct frame *nf = &stack[depth + 1];
				nf->dir = fdopendir(sub);
				if (!nf->dir) {
					r = fail_at(c, -errno);
					close(sub);
					goto out;
				}
				nf->st = st;
				nf->path_len = saved;
				depth++;
				c->visited++;
				continue;
			}
			/* no longer a directory: handled below as whatever it is now */
		} else if (!needs_change(c, &st)) {
			/* the common case on a second run, and the second name of a hard link */
			c->visited++;
			path_pop(c, saved);
			continue;
		}
		if ((r = patch_entry(c, dfd, name)) < 0) {
			r = fail_at(c, r);
			goto out;
		}
		path_pop(c, saved);
	}
	r = 0;
out:
	for (int i = 0; i < SHIFT_MAX_DEPTH && i <= depth; i++)
		if (stack[i].dir)
			closedir(stack[i].dir);
	free(stack);
	return r;
}

/*
 * Give every inode below `path` (on the same mount) the owner
 * shift + (uid & 0xFFFF) : shift + (gid & 0xFFFF). stats[0] = inodes visited,
 * stats[1] = inodes changed. Returns 0 or -errno; on failure
 * nsh_shift_error_path() names the path that failed. `path` itself is the
 * caller's (it may be a symlink to the tree); nothing inside it is followed.
 */
int nsh_shift_tree(const char *path, uint32_t shift, uint64_t *stats)
{
	shift_error_path[0] = '\0';
	stats[0] = stats[1] = 0;
	snprintf(shift_error_path, sizeof shift_error_path, "%s", path);
	/* ranges are 64K wide and aligned; the busy range and the one above it are not ranges */
	if ((shift & 0xFFFFu) != 0 || shift >= SHIFT_BUSY_BASE)
		return -EINVAL;
	struct shift_ctx *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->shift = shift;
	snprintf(c->path, sizeof c->path, "%s", path);
	c->path_len = strlen(c->path);
	while (c->path_len > 1 && c->path[c->path_len - 1] == '/')
		c->path[--c->path_len] = '\0';

	int r, fd = open(path, O_RDONLY | O_DIRECTORY | O_NOATIME | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	struct nsh_statx st;
	if ((r = nsh_statx(fd, "", AT_EMPTY_PATH, &st)) < 0) {
		close(fd);
		goto out;
	}
	c->have_mnt_id = (st.mask & STATX_MNT_ID) != 0;
	c->mnt_id = st.mnt_id;
	c->dev_major = st.dev_major;
	c->dev_minor = st.dev_minor;
	if (needs_change(c, &st) && (st.uid & 0xFFFF0000u) != SHIFT_BUSY_BASE) {
		uint32_t bu = SHIFT_BUSY_BASE | (st.uid & 0xFFFFu), bg = SHIFT_BUSY_BASE | (st.gid & 0xFFFFu);
		if (fchown(fd, bu, bg) < 0) {
			r = -errno;
			close(fd);
			goto out;
		}
		st.uid = bu;
		st.gid = bg;
	}
	r = shift_walk(c, fd, &st);
	stats[0] = c->visited;
	stats[1] = c->changed;
out:
	free(c);
	return r;
}

/* The path nsh_shift_tree() last failed on. */
const char *nsh_shift_error_path(void)
{
	return shift_error_path;
}

/* ---- user namespaces and idmapped mounts ---------------------------------- */

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t len = strlen(text);
	ssize_t n = write(fd, text, len);
	int r = n < 0 ? -errno : (size_t)n != len ? -EIO : 0;
	close(fd);
	return r;
}

/*
 * Write the id maps of pid's (new) user namespace, uid_map and gid_map in
 * the kernel's text format, and return an fd of that namespace, or -errno
 * with *failed_at (when given) 0 for uid_map, 1 for gid_map, 2 for the
 * namespace's file.
 */
static int nsh_map_userns(int pid, const char *uid_map, const char *gid_map, int32_t *failed_at)
{
	char path[64];
	int r;
	int32_t step = 0;
	snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
	r = write_file(path, uid_map);
	if (r == 0) {
		step = 1;
		snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
		r = write_file(path, gid_map);
	}
	if (r == 0) {
		step = 2;
		snprintf(path, sizeof path, "/proc/%d/ns/user", pid);
		r = open(path, O_RDONLY | O_CLOEXEC);
		if (r < 0)
			r = -errno;
	}
	if (r < 0 && failed_at)
		*failed_at = step;
	return r;
}

/*
 * A user namespace with the given uid_map and gid_map (the kernel's text
 * format), returned as an fd of /proc/PID/ns/user, or -errno. A namespace
 * needs a process to be created in: a child made with a raw clone (we are a
 * multi-threaded process: no fork handlers, nothing but system calls in the
 * child) waits on a pipe while we write its maps and open its namespace,
 * then exits.
 */
int nsh_make_userns(const char *uid_map, const char *gid_map)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = (pid_t)syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | SIGCHLD), 0, 0, 0, 0);
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid == 0) {
		char b;
		syscall(SYS_close, p[1]);
		syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		while (syscall(SYS_read, p[0], &b, 1) < 0 && errno == EINTR)
			;
		syscall(SYS_exit_group, 0);
	}
	close(p[0]);
	int r = nsh_map_userns(pid, uid_map, gid_map, NULL);
	close(p[1]);
	int st;
	while (waitpid(pid, &st, __WALL) < 0 && errno == EINTR)
		;
	return r;
}

/*
 * A detached clone of the mount at `path` (with its submounts if recursive)
 * whose ownership is seen through the user namespace userns_fd. Returns the
 * mount fd (O_PATH-like: attach it with move_mount, or look inside it with
 * openat) or -errno; EINVAL/EOPNOTSUPP mean the file system cannot do it.
 */
int nsh_idmapped_tree(const char *path, int userns_fd, int recursive)
{
	unsigned int flags = OPEN_TREE_CLONE | O_CLOEXEC | (recursive ? AT_RECURSIVE : 0);
	int fd = (int)syscall(SYS_open_tree, AT_FDCWD, path, flags);
	if (fd < 0)
		return -errno;
	struct nsh_mount_attr a = { .attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)userns_fd };
	if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &a, sizeof a) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif
#define NSH_FSCONFIG_SET_STRING 1
#define NSH_FSCONFIG_CMD_CREATE 6
#define NSH_MOUNT_ATTR_NOSUID 0x00000002
#define NSH_MOUNT_ATTR_STRICTATIME 0x00000020

/*
 * The /dev of a container in a user namespace: a tmpfs made here, by the
 * host's root, as a detached mount (a tmpfs mounted inside the namespace
 * could hold device nodes that never open), with its nodes already made.
 * `opts` are its mount options as spawnctl decided them ("mode=0755,size=4m,
 * ..."), `names` holds n NUL-terminated paths relative to /dev ("null",
 * "net/tun"), devs their device numbers. The directory, its subdirectories
 * and the nodes (mode 0666) are owned by uid:gid, the container's root.
 * Returns the mount fd (the child attaches it with move_mount) or -errno;
 * *failed_at is the index of the node that could not be made, else -1.
 */
static int nsh_make_devfs(const char *opts, const char *names, const uint64_t *devs, int n, uint32_t uid, uint32_t gid, int32_t *failed_at)
{
	char num[24], ob[256];
	*failed_at = -1;
	if (strlen(opts) >= sizeof ob)
		return -EINVAL;
	int fs = (int)syscall(SYS_fsopen, "tmpfs", 1 /* FSOPEN_CLOEXEC */);
	if (fs < 0)
		return -errno;
	strcpy(ob, opts);
	char *save = NULL;
	for (char *kv = strtok_r(ob, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '=');
		if (eq)
			*eq = 0;
		if (syscall(SYS_fsconfig, fs, NSH_FSCONFIG_SET_STRING, kv, eq ? eq + 1 : NULL, 0) < 0)
			goto fail_fs;
	}
	snprintf(num, sizeof num, "%u", uid);
	if (syscall(SYS_fsconfig, fs, NSH_FSCONFIG_SET_STRING, "uid", num, 0) < 0)
		goto fail_fs;
	snprintf(num, sizeof num, "%u", gid);
	if (syscall(SYS_fsconfig, fs, NSH_FSCONFIG_SET_STRING, "gid", num, 0) < 0)
		goto fail_fs;
	if (syscall(SYS_fsconfig, fs, NSH_FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		goto fail_fs;
	int mnt = (int)syscall(SYS_fsmount, fs, 1 /* FSMOUNT_CLOEXEC */, NSH_MOUNT_ATTR_NOSUID | NSH_MOUNT_ATTR_STRICTATIME);
	if (mnt < 0)
		goto fail_fs;
	close(fs);
	const char *name = names;
	for (int i = 0; i < n; i++, name += strlen(name) + 1) {
		/* a node in a subdirectory: make the directory first */
		const char *slash = strrchr(name, '/');
		if (slash) {
			char dir[64];
			size_t len = (size_t)(slash - name);
			if (len >= sizeof dir) {
				errno = ENAMETOOLONG;
				goto fail_node;
			}
			memcpy(dir, name, len);
			dir[len] = 0;
			if (mkdirat(mnt, dir, 0755) < 0 && errno != EEXIST)
				goto fail_node;
			if (fchownat(mnt, dir, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
				goto fail_node;
		}
		/* the umask would narrow the mode: set it after */
		if (nsh_mknodat(mnt, name, S_IFCHR | 0666, (dev_t)devs[i]) < 0 || fchmodat(mnt, name, 0666, 0) < 0 ||
		    fchownat(mnt, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
			goto fail_node;
		continue;
	fail_node:;
		int e = errno;
		*failed_at = i;
		close(mnt);
		return -e;
	}
	return mnt;
fail_fs:;
	int e = errno;
	close(fs);
	return -e;
}

/*
 * chown (not following symlinks) each of n NUL-terminated paths in `paths`
 * to uid:gid, in one call: a container's cgroup delegation is a dozen files.
 * Returns 0, or -errno with *failed_at the index of the path that failed.
 */
static int nsh_chown_paths(const char *paths, int n, uint32_t uid, uint32_t gid, int32_t *failed_at)
{
	const char *p = paths;
	*failed_at = -1;
	for (int i = 0; i < n; i++, p += strlen(p) + 1) {
		if (fchownat(AT_FDCWD, p, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
			*failed_at = i;
			return -errno;
		}
	}
	return 0;
}

/* from nsh.c, in the same shared object */
int nsh_spawn(const uint8_t *buf, uint64_t len, int32_t *fds_out);
int nsh_clone_tree(const char *path, int recursive);
int nsh_send(int fd, uint8_t byte, int pass_fd);

int nsh_parent_parse(const uint8_t *buf, uint64_t len, const struct nsh_op **ops, const char **str, uint32_t *nops);

/*
 * The parent's side of a plan (abi.ts POP): run its ops from `from` on, for
 * the child pid whose sync socket is `sync`, until a STEP (TypeScript's to
 * run) or the end. `st` is the caller's across calls: NSH_PARENT_REGS
 * registers (fds of user namespaces, -1 when empty), the queue's length,
 * then the queued detached mounts, which a GO sends after its go-ahead, in
 * order. Nothing here decides: every path, map, option and owner comes in
 * the op. Returns the index it stopped at (nops when done), or -1 with
 * result[0] the failed op, result[1] its errno and result[2] which part of
 * it (the map file, the path or the node), else -1.
 */
int nsh_parent_run(int pid, int sync, const uint8_t *buf, uint64_t len, uint32_t from, int32_t *st, int32_t *result)
{
	const struct nsh_op *ops;
	const char *str;
	uint32_t nops;
	int32_t *regs = st, *queued = st + NSH_PARENT_REGS, *queue = st + NSH_PARENT_REGS + 1;
	result[0] = (int32_t)from;
	result[1] = 0;
	result[2] = -1;
	int r = nsh_parent_parse(buf, len, &ops, &str, &nops);
	if (r < 0) {
		result[1] = -r;
		return -1;
	}
	for (uint32_t i = from; i < nops; i++) {
		const struct nsh_op *o = &ops[i];
		const char *s0 = o->s[0] == NSH_NO_STRING ? NULL : str + o->s[0];
		const char *s1 = o->s[1] == NSH_NO_STRING ? NULL : str + o->s[1];
		int fd = 0;
		result[0] = (int32_t)i;
		switch (o->kind) {
		case NSH_POP_STEP:
			return (int)i;
		case NSH_POP_MAP_USERNS:
		case NSH_POP_MAKE_USERNS:
			fd = o->kind == NSH_POP_MAP_USERNS ? nsh_map_userns(pid, s0, s1, &result[2]) : nsh_make_userns(s0, s1);
			if (fd >= 0) {
				if (regs[o->n[0]] >= 0)
					close(regs[o->n[0]]);
				regs[o->n[0]] = fd;
			}
			break;
		case NSH_POP_CLOSE_REG:
			if (regs[o->n[0]] >= 0)
				close(regs[o->n[0]]);
			regs[o->n[0]] = -1;
			break;
		case NSH_POP_IDMAP_TREE:
		case NSH_POP_CLONE_TREE:
		case NSH_POP_MAKE_DEVFS:
			if (*queued >= NSH_PARENT_QUEUE) {
				fd = -EMFILE;
				break;
			}
			if (o->kind == NSH_POP_IDMAP_TREE) {
				fd = nsh_idmapped_tree(s1, regs[o->n[0]], (int)o->n[1]);
			} else if (o->kind == NSH_POP_CLONE_TREE) {
				fd = nsh_clone_tree(s1, (int)o->n[1]);
			} else {
				uint64_t devs[64];
				if (o->n[0])
					memcpy(devs, str + o->s[2], o->n[0] * sizeof devs[0]);
				fd = nsh_make_devfs(s0, s1, devs, (int)o->n[0], (uint32_t)o->n[1], (uint32_t)o->n[2], &result[2]);
			}
			if (fd >= 0)
				queue[(*queued)++] = fd;
			break;
		case NSH_POP_CHOWN_PATHS:
			fd = o->n[0] ? nsh_chown_paths(s1, (int)o->n[0], (uint32_t)o->n[1], (uint32_t)o->n[2], &result[2]) : 0;
			break;
		case NSH_POP_GO:
			fd = nsh_send(sync, NSH_CTL_GO, -1);
			for (int k = 0; k < *queued; k++) {
				if (fd == 0)
					fd = nsh_send(sync, NSH_CTL_FD, queue[k]);
				close(queue[k]);
			}
			*queued = 0;
			break;
		}
		if (fd < 0) {
			result[1] = -fd;
			return -1;
		}
	}
	return (int)nops;
}

/* Close what a parent program's state holds. */
void nsh_parent_release(int32_t *st)
{
	for (int k = 0; k < NSH_PARENT_REGS; k++)
		if (st[k] >= 0) {
			close(st[k]);
			st[k] = -1;
		}
	for (int k = 0; k < st[NSH_PARENT_REGS]; k++)
		close(st[NSH_PARENT_REGS + 1 + k]);
	st[NSH_PARENT_REGS] = 0;
}

/*
 * nsh_spawn, then the parent program from its start, in the same call: the
 * child waits for no JavaScript until the program's first STEP. The program
 * is checked before the clone. result[3] is nsh_parent_run's return.
 */
int nsh_spawn_parent(const uint8_t *buf, uint64_t len, int32_t *fds_out, const uint8_t *prog, uint64_t plen, int32_t *st,
		     int32_t *result)
{
	const struct nsh_op *ops;
	const char *str;
	uint32_t nops;
	int r = nsh_parent_parse(prog, plen, &ops, &str, &nops);
	if (r < 0)
		return r;
	int pid = nsh_spawn(buf, len, fds_out);
	if (pid < 0)
		return pid;
	result[3] = nsh_parent_run(pid, fds_out[0], prog, plen, 0, st, result);
	return pid;
}
