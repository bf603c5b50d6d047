/*
 * lminit: a labmgr node's init, and the helper that enters a running node.
 *
 *   lminit spawn [options] [-- CMD...]   start a node; prints the init's pid (host view)
 *   lminit exec --pid PID --start TICKS [options] -- CMD...   run CMD inside a running
 *                  node, whose init is PID started at TICKS (clock ticks after boot)
 *   lminit mntns   hold a small mount namespace for spawns until stdin closes
 *
 * spawn runs in two stages. Stage 1 (the process the agent starts, root on the host)
 * joins the node's cgroups and network namespace, makes a private mount namespace in
 * which it builds the node's root (the host tree read-only under an overlay whose
 * writable layer is the node's directory on the deployment's layers tmpfs; an image's
 * unpacked tree, idmapped to the node's uids, under such a layer; or a given
 * directory), /dev, /sys, /tmp, /run, /etc/hosts
 * and /etc/hostname, and pivots into it, which drops every other mount, /run/netns
 * included. It then clones the init into new user, PID, mount, UTS, IPC and cgroup
 * namespaces, writes its uid/gid maps, waits until it is ready and exits: the init
 * is re-parented to the agent (a child subreaper) or to the machine's init.
 *
 * Copying a mount namespace costs in proportion to its mounts, and the agent's holds one
 * per network namespace under /run/netns: with `--mntns` (a namespace `lminit mntns`
 * holds, the host's without /run/netns) stage 1 starts from a small copy, so starting a
 * node does not grow with the number of nodes already running.
 *
 * The init (PID 1 of its namespace) mounts its /proc, sets the hostname, starts the
 * node's command in the work directory with its environment, then reaps every zombie and
 * forwards signals to the command. The node outlives its command: it stops when it is
 * killed, or when it is asked to stop (SIGTERM/SIGINT/SIGHUP) and its command is gone.
 *
 * A user-namespaced node is an unprivileged user of the host's tree: the host's uids are
 * not mapped in its namespace, so their files read as the overflow uid (nobody) and keep
 * their modes; the node's root may read what any host user may, and write only what its
 * layer owns (its top directory, a few world-readable ones such as /etc and /var, an
 * empty /root). The overlay is nosuid and nodev: no setuid program or device node of the
 * host's tree works inside. Its /proc is its own PID namespace's (see mount_own_proc).
 *
 * Written in C because an init must cost little per node (hundreds per host) and must
 * not run an interpreter as PID 1 of every node.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#define MAX_LIST 64
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* The new mount API, spelled out for C libraries older than its wrappers; these syscall
 * numbers are the same on every architecture but alpha. */
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif
#ifndef FSOPEN_CLOEXEC
#define FSOPEN_CLOEXEC 0x00000001
#endif
#ifndef FSCONFIG_SET_STRING
#define FSCONFIG_SET_STRING 1
#endif
#ifndef FSCONFIG_CMD_CREATE
#define FSCONFIG_CMD_CREATE 6
#endif
#ifndef FSMOUNT_CLOEXEC
#define FSMOUNT_CLOEXEC 0x00000001
#endif
#ifndef MOUNT_ATTR_NOSUID
#define MOUNT_ATTR_NOSUID 0x00000002
#endif
#ifndef MOUNT_ATTR_NODEV
#define MOUNT_ATTR_NODEV 0x00000004
#endif
#ifndef MOUNT_ATTR_NOEXEC
#define MOUNT_ATTR_NOEXEC 0x00000008
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef MOVE_MOUNT_T_EMPTY_PATH
#define MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#endif

struct lm_mount_attr { /* struct mount_attr of linux/mount.h */
    unsigned long long attr_set, attr_clr, propagation, userns_fd;
};

struct options {
    const char *mounts[MAX_LIST]; /* kind:mode:source:path, kind v(olume) or h(ost), mode ro|rw */
    int nmounts;
    const char *netns, *mntns, *hostname, *rootfs, *image, *hosts, *hostname_file, *scratch, *log, *workdir;
    const char *cgroups[MAX_LIST];
    int ncgroups;
    char *env[MAX_LIST * 4];
    int nenv;
    long uid_base, start;
    long uid, gid; /* the command's user inside the node; -1: root */
    int clone_flags;
    pid_t pid;
    char **command;
};

static void write_id_maps(pid_t pid, long base);
static void attach(int mount_fd, const char *target);

static int status_fd = -1; /* where the init reports "ready" or an error to stage 1 */
static int log_fd = -1;    /* the node's log: the init's and the command's output */
static int host_proc = -1; /* a detached clone of the host's /proc, for mount_own_proc */

static void die(const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg - 2, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if (n > (int)sizeof msg - 2) n = sizeof msg - 2;
    if (errno) n += snprintf(msg + n, sizeof msg - n, ": %s", strerror(errno));
    if (status_fd >= 0) {
        if (write(status_fd, msg, strlen(msg)) < 0) _exit(126);
    } else {
        fprintf(stderr, "lminit: %s\n", msg);
    }
    _exit(125);
}

static int try_write_file_at(int dir, const char *path, const char *text) {
    int fd = openat(dir, path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
    int saved = errno;
    close(fd);
    errno = saved;
    return ok ? 0 : -1;
}

static void write_file(const char *path, const char *text) {
    if (try_write_file_at(AT_FDCWD, path, text) < 0) die("write %s", path);
}

static int ns_flag(const char *name) {
    if (!strcmp(name, "mnt")) return CLONE_NEWNS;
    if (!strcmp(name, "uts")) return CLONE_NEWUTS;
    if (!strcmp(name, "ipc")) return CLONE_NEWIPC;
    if (!strcmp(name, "pid")) return CLONE_NEWPID;
    if (!strcmp(name, "cgroup")) return CLONE_NEWCGROUP;
    if (!strcmp(name, "user")) return CLONE_NEWUSER;
    errno = 0;
    die("unknown namespace kind %s", name);
    return 0;
}

static void parse(int argc, char **argv, struct options *o) {
    memset(o, 0, sizeof *o);
    o->uid = o->gid = -1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) { o->command = &argv[i + 1]; return; }
        if (i + 1 >= argc) { errno = 0; die("%s needs a value", a); }
        char *v = argv[++i];
        if (!strcmp(a, "--netns")) o->netns = v;
        else if (!strcmp(a, "--mntns")) o->mntns = v;
        else if (!strcmp(a, "--hostname")) o->hostname = v;
        else if (!strcmp(a, "--rootfs")) o->rootfs = v;
        else if (!strcmp(a, "--image")) o->image = v;
        else if (!strcmp(a, "--user")) {
            char *end;
            o->uid = strtol(v, &end, 10);
            o->gid = *end == ':' ? strtol(end + 1, &end, 10) : o->uid;
            if (*end || o->uid < 0 || o->gid < 0 || o->uid > 65535 || o->gid > 65535) {
                errno = 0;
                die("--user takes UID[:GID] below 65536, not %s", v);
            }
        }
        else if (!strcmp(a, "--hosts")) o->hosts = v;
        else if (!strcmp(a, "--hostname-file")) o->hostname_file = v;
        else if (!strcmp(a, "--scratch")) o->scratch = v;
        else if (!strcmp(a, "--log")) o->log = v;
        else if (!strcmp(a, "--workdir")) o->workdir = v;
        else if (!strcmp(a, "--uid-base")) o->uid_base = atol(v);
        else if (!strcmp(a, "--pid")) o->pid = (pid_t)atol(v);
        else if (!strcmp(a, "--start")) o->start = atol(v);
        else if (!strcmp(a, "--mount") && o->nmounts < MAX_LIST) o->mounts[o->nmounts++] = v;
        else if (!strcmp(a, "--cgroup") && o->ncgroups < MAX_LIST) o->cgroups[o->ncgroups++] = v;
        else if (!strcmp(a, "--env") && o->nenv < MAX_LIST * 4 - 8) o->env[o->nenv++] = v;
        else if (!strcmp(a, "--ns")) {
            for (char *tok = strtok(v, ","); tok; tok = strtok(NULL, ",")) o->clone_flags |= ns_flag(tok);
        } else { errno = 0; die("unknown option %s", a); }
    }
}

static void join_cgroups(struct options *o) {
    char pid[32];
    snprintf(pid, sizeof pid, "%d", getpid());
    for (int i = 0; i < o->ncgroups; i++) write_file(o->cgroups[i], pid);
}

static int open_ns(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open namespace %s", path);
    return fd;
}

static void join_ns(int fd, int kind, const char *path) {
    if (setns(fd, kind) < 0) die("setns %s", path);
    close(fd);
}

static void mnt(const char *src, const char *dst, const char *type, unsigned long flags,
                const char *data) {
    if (mount(src, dst, type, flags, data) < 0) die("mount %s on %s", type ? type : src, dst);
}

static void path_join(char *out, size_t size, const char *root, const char *rel) {
    if ((size_t)snprintf(out, size, "%s%s", root, rel) >= size) { errno = ENAMETOOLONG; die("%s", rel); }
}

/* A device file of the host bound into the node's /dev tmpfs. */
static void bind_device(const char *root, const char *name) {
    char src[64], dst[4096];
    snprintf(src, sizeof src, "/dev/%s", name);
    path_join(dst, sizeof dst, root, src);
    int fd = open(dst, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
    if (fd < 0) die("create %s", dst);
    close(fd);
    mnt(src, dst, NULL, MS_BIND, NULL);
}

/* A file of the node's (its /etc/hosts, /etc/hostname) bound over the tree's: the node's
 * root owns it, so it can edit it. */
static void bind_file(const char *src, const char *root, const char *rel, struct options *o) {
    char dst[4096];
    struct stat st;
    if ((o->clone_flags & CLONE_NEWUSER) && chown(src, (uid_t)o->uid_base, (gid_t)o->uid_base) < 0)
        die("own %s", src);
    path_join(dst, sizeof dst, root, rel);
    if (stat(dst, &st) < 0) {
        int fd = open(dst, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0) return; /* a read-only tree without /etc: nothing to put it on */
        close(fd);
    }
    mnt(src, dst, NULL, MS_BIND, NULL);
}

static void layer_dir(char *out, const char *scratch, const char *name) {
    char rel[32];
    snprintf(rel, sizeof rel, "/%s", name);
    path_join(out, 4096, scratch, rel);
    if (mkdir(out, 0755) < 0 && errno != EEXIST) die("mkdir %s", out);
}

/* Host directories a user-namespaced node may add entries of its own to, parents first.
 * Each is merged with the host's, whose entries keep their owners and modes, so the node
 * can list it and read in it only what any host user can: hence only where the host's
 * directory and every directory above it are world-readable and world-searchable. */
static const char *const node_dirs[] = {
    "/etc", "/home", "/mnt", "/opt", "/srv",
    "/var", "/var/cache", "/var/lib", "/var/log", "/var/spool",
};

/* Whether the host's "/" and every directory of the absolute `path` down to itself is a
 * real directory (no symlink) anyone may list and enter, mode o+rx; `leaf` gets the
 * last one's stat. */
static int world_listable(const char *path, struct stat *leaf) {
    char prefix[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof prefix || path[0] != '/') return 0;
    for (size_t i = 1; i <= n; i++) {
        if (i < n && path[i] != '/') continue;
        memcpy(prefix, path, i);
        prefix[i] = 0;
        if (lstat(i == 1 ? "/" : prefix, leaf) < 0 || !S_ISDIR(leaf->st_mode) ||
            (leaf->st_mode & (S_IROTH | S_IXOTH)) != (S_IROTH | S_IXOTH))
            return 0;
    }
    return 1;
}

/* A directory of the node's layer owned by the node's root (`base` outside). */
static void own_dir(const char *upper, const char *rel, mode_t mode, long base, int opaque) {
    char p[4096];
    struct stat st;
    path_join(p, sizeof p, upper, rel);
    if (mkdir(p, mode) < 0 && errno != EEXIST) die("mkdir %s", p);
    if (lstat(p, &st) < 0) die("stat %s", p);
    if (!S_ISDIR(st.st_mode)) return; /* the node removed it from its tree: keep that */
    if (chown(p, (uid_t)base, (gid_t)base) < 0 || chmod(p, mode) < 0) die("own %s", p);
    /* Opaque: the merged directory shows only the layer's entries, none of the host's. */
    if (opaque && setxattr(p, "trusted.overlay.opaque", "y", 1, 0) < 0) die("make %s opaque", p);
}

/* What a user-namespaced node's root owns of its tree, set in the layer before the
 * overlay is mounted: its "/" (so it can make top-level entries), the world-readable
 * node_dirs, and an empty /root of its own (HOME), opaque so that the host's /root is
 * never listed. Everything else of the host's tree is read-only to it. */
static void own_layer(const char *upper, long base) {
    struct stat st;
    if (!world_listable("/", &st)) return;
    own_dir(upper, "", st.st_mode & 07777, base, 0);
    for (size_t i = 0; i < sizeof node_dirs / sizeof *node_dirs; i++)
        if (world_listable(node_dirs[i], &st)) own_dir(upper, node_dirs[i], st.st_mode & 07777, base, 0);
    own_dir(upper, "/root", 0700, base, 1);
}

/* The host's tree under a writable layer kept in `scratch` (upper, work), mounted at
 * <scratch>/root: the host's root filesystem as it is (its owners, read-only to whom it
 * is read-only on the host), without setuid programs or device nodes. With `base` >= 0
 * (a user-namespaced node) the layer gives the node's root the directories own_layer
 * says. */
static void layered_host_root(const char *scratch, long base, char *root) {
    char upper[4096], work[4096], data[3 * 4096 + 64];
    layer_dir(upper, scratch, "upper");
    layer_dir(work, scratch, "work");
    layer_dir(root, scratch, "root");
    if (base >= 0) own_layer(upper, base);
    snprintf(data, sizeof data, "lowerdir=/,upperdir=%s,workdir=%s", upper, work);
    mnt("overlay", root, "overlay", MS_NOSUID | MS_NODEV, data);
}

/* A user namespace mapping the node's uids (0..65535 inside, `base` up outside), for
 * idmapping a mount: held by a child made in it for as long as it takes to open it. */
static int mapped_userns(long base) {
    int hold[2];
    if (pipe2(hold, O_CLOEXEC) < 0) die("pipe");
    pid_t pid = (pid_t)syscall(SYS_clone, (unsigned long)CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid < 0) die("clone a user namespace");
    if (pid == 0) {
        char byte;
        close(hold[1]);
        if (read(hold[0], &byte, 1) < 0) _exit(1);
        _exit(0);
    }
    close(hold[0]);
    write_id_maps(pid, base);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/user", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int saved = errno;
    close(hold[1]);
    waitpid(pid, NULL, 0);
    errno = saved;
    if (fd < 0) die("open the node's user namespace");
    return fd;
}

/* An image's unpacked tree (`image`, owned by its own uids 0..65535 on disk, in a
 * directory only root reaches) under a writable layer kept in `scratch`, mounted at
 * <scratch>/root. The tree is bound read-only and without devices at <scratch>/lower,
 * idmapped with `base` >= 0 (a user-namespaced node) so that its files belong to the
 * node's uids: its root owns what the image's root owns, and nothing of the host. One
 * unpacked copy serves every node of the image; what a node writes goes to its layer. */
static void layered_image_root(const char *image, const char *scratch, long base, char *root) {
    char upper[4096], work[4096], lower[4096], data[3 * 4096 + 64];
    struct stat st;
    layer_dir(upper, scratch, "upper");
    layer_dir(work, scratch, "work");
    layer_dir(lower, scratch, "lower");
    layer_dir(root, scratch, "root");
    if (lstat(image, &st) < 0 || !S_ISDIR(st.st_mode)) die("image tree %s", image);
    /* The merged "/" takes the layer's top directory: the image root's mode, its owner. */
    long owner = base >= 0 ? base : 0;
    if (chown(upper, (uid_t)(owner + st.st_uid), (gid_t)(owner + st.st_gid)) < 0 ||
        chmod(upper, st.st_mode & 07777) < 0)
        die("own %s", upper);
    int tree = (int)syscall(SYS_open_tree, AT_FDCWD, image, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (tree < 0) die("clone the image tree %s (open_tree)", image);
    struct lm_mount_attr attr = {MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV, 0, 0, 0};
    int userns = -1;
    if (base >= 0) {
        userns = mapped_userns(base);
        attr.attr_set |= MOUNT_ATTR_IDMAP;
        attr.userns_fd = (unsigned long long)userns;
    }
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0)
        die("idmap the image tree (mount_setattr)");
    if (userns >= 0) close(userns);
    attach(tree, lower);
    snprintf(data, sizeof data, "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work);
    mnt("overlay", root, "overlay", MS_NODEV, data);
    /* What the node's root is mounted on must be a directory of the tree: made (in the
     * node's layer) when the image lacks it, refused when it is a link, which would lead
     * the mount out of the tree. */
    const char *points[] = {"/proc", "/sys", "/dev", "/tmp", "/run", "/etc"};
    for (int i = 0; i < 6; i++) {
        char p[4096];
        path_join(p, sizeof p, root, points[i]);
        if (lstat(p, &st) == 0) {
            if (!S_ISDIR(st.st_mode)) { errno = 0; die("the image's %s is not a directory", points[i]); }
            continue;
        }
        if (errno != ENOENT || mkdir(p, 0755) < 0 || lchown(p, (uid_t)owner, (gid_t)owner) < 0)
            die("make %s in the node's layer", points[i]);
    }
}

/* The mount point `rel` (absolute inside the node) of the node's tree at `root`, as an
 * O_PATH descriptor, walked one component at a time without following a link: a tree
 * whose /data is a link to / or to ../.. cannot lead a mount out of it. What is missing
 * is made in the node's layer (a directory, or an empty file for a file's bind), owned
 * by the node's root. */
static int mount_point(const char *root, const char *rel, int file, long owner) {
    char copy[4096];
    int dir = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) die("open %s", root);
    snprintf(copy, sizeof copy, "%s", rel);
    char *save = NULL;
    char *part = strtok_r(copy, "/", &save);
    while (part) {
        char *next = strtok_r(NULL, "/", &save);
        int last = next == NULL;
        if (!strcmp(part, "..") || !strcmp(part, ".")) { errno = EINVAL; die("mount path %s", rel); }
        int fd = openat(dir, part, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
            int made = last && file ? mknodat(dir, part, S_IFREG | 0644, 0) : mkdirat(dir, part, 0755);
            if (made < 0 || fchownat(dir, part, (uid_t)owner, (gid_t)owner, AT_SYMLINK_NOFOLLOW) < 0)
                die("make the mount point %s in the node", rel);
            fd = openat(dir, part, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        }
        if (fd < 0) die("open the mount point %s in the node", rel);
        struct stat st;
        if (fstat(fd, &st) < 0) die("stat %s", rel);
        if (S_ISLNK(st.st_mode)) { errno = ELOOP; die("the node's %s leads through a symbolic link", rel); }
        if (!last && !S_ISDIR(st.st_mode)) { errno = ENOTDIR; die("the node's %s", rel); }
        if (last && !file != !!S_ISDIR(st.st_mode)) {
            errno = file ? EISDIR : ENOTDIR;
            die("the node's %s does not take this mount", rel);
        }
        close(dir);
        dir = fd;
        part = next;
    }
    return dir;
}

/* The node's mounts (--mount kind:mode:source:path), on its tree at `root`: a volume (a
 * tmpfs of the deployment owned by root) idmapped to the node's uids, so that its root
 * owns it as every other node's root sharing it does; a host path (an admin's) as it is,
 * with its submounts. Both without setuid or devices, read-only for mode ro; the
 * node's namespace locks these flags, so its root cannot lift them. */
static void node_mounts(struct options *o, const char *root) {
    long base = o->clone_flags & CLONE_NEWUSER ? o->uid_base : -1;
    for (int i = 0; i < o->nmounts; i++) {
        char spec[8192];
        snprintf(spec, sizeof spec, "%s", o->mounts[i]);
        char *kind = spec, *mode = strchr(kind, ':'), *source = mode ? strchr(mode + 1, ':') : NULL;
        char *path = source ? strchr(source + 1, ':') : NULL;
        if (!path) { errno = EINVAL; die("--mount %s", o->mounts[i]); }
        *mode++ = 0, *source++ = 0, *path++ = 0;
        int volume = !strcmp(kind, "v"), recursive = volume ? 0 : AT_RECURSIVE;
        struct stat st;
        if (stat(source, &st) < 0) die("the %s %s", volume ? "volume" : "host path", source);
        int tree = (int)syscall(SYS_open_tree, AT_FDCWD, source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | recursive);
        if (tree < 0) die("clone %s (open_tree)", source);
        struct lm_mount_attr attr = {MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0, 0};
        if (!strcmp(mode, "ro")) attr.attr_set |= MOUNT_ATTR_RDONLY;
        int userns = -1;
        if (volume && base >= 0) {
            userns = mapped_userns(base);
            attr.attr_set |= MOUNT_ATTR_IDMAP;
            attr.userns_fd = (unsigned long long)userns;
        }
        if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | recursive, &attr, sizeof attr) < 0)
            die("set the flags of the mount of %s on %s (mount_setattr)", source, path);
        if (userns >= 0) close(userns);
        int at = mount_point(root, path, !S_ISDIR(st.st_mode), base >= 0 ? base : 0);
        if (syscall(SYS_move_mount, tree, "", at, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
            die("mount %s on the node's %s (move_mount)", source, path);
        close(tree);
        close(at);
    }
}

/* Stage 1: the node's root, built in a mount namespace that only the node will use. */
static void build_root(struct options *o) {
    char root[4096], p[4096];
    if (unshare(CLONE_NEWNS) < 0) die("unshare mount namespace");
    mnt(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    if (o->image) {
        layered_image_root(o->image, o->scratch, o->clone_flags & CLONE_NEWUSER ? o->uid_base : -1, root);
    } else if (!strcmp(o->rootfs, "host")) {
        /* The writable layer lives on the deployment's layers tmpfs: on another
         * filesystem than the lower "/" (so the layers do not overlap), owned on disk by
         * the node's uids, and gone with the deployment. */
        layered_host_root(o->scratch, o->clone_flags & CLONE_NEWUSER ? o->uid_base : -1, root);
    } else {
        snprintf(root, sizeof root, "%s", o->rootfs);
        mnt(root, root, NULL, MS_BIND | MS_REC, NULL);
    }
    path_join(p, sizeof p, root, "/proc");
    if (!(o->clone_flags & CLONE_NEWPID)) {
        /* The node shares the host's processes: it sees the host's /proc. */
        mnt("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    } else if (o->clone_flags & CLONE_NEWUSER) {
        /* Not mounted in the tree, where the node could uncover it: mount_own_proc
         * needs it for a moment only. */
        host_proc = (int)syscall(SYS_open_tree, AT_FDCWD, "/proc", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (host_proc < 0) die("clone the host's /proc (open_tree)");
    }
    path_join(p, sizeof p, root, "/sys"); /* a fresh sysfs shows the node's netns */
    mnt("sysfs", p, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    path_join(p, sizeof p, root, "/dev");
    mnt("lmdev", p, "tmpfs", MS_NOSUID, "mode=0755");
    const char *devices[] = {"null", "zero", "full", "random", "urandom", "tty"};
    for (int i = 0; i < 6; i++) bind_device(root, devices[i]);
    const char *devdirs[] = {"/dev/pts", "/dev/shm"};
    for (int i = 0; i < 2; i++) {
        path_join(p, sizeof p, root, devdirs[i]);
        if (mkdir(p, 0755) < 0) die("mkdir %s", p);
    }
    path_join(p, sizeof p, root, "/dev/pts");
    mnt("devpts", p, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
    path_join(p, sizeof p, root, "/dev/ptmx");
    if (symlink("pts/ptmx", p) < 0) die("symlink %s", p);
    path_join(p, sizeof p, root, "/dev/shm");
    mnt("shm", p, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
    path_join(p, sizeof p, root, "/tmp");
    mnt("lmtmp", p, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
    path_join(p, sizeof p, root, "/run");
    /* The node's root owns its /run (pid files, sockets), as host root owns the host's. */
    char run_data[64] = "mode=0755";
    if (o->clone_flags & CLONE_NEWUSER)
        snprintf(run_data, sizeof run_data, "mode=0755,uid=%ld,gid=%ld", o->uid_base, o->uid_base);
    mnt("lmrun", p, "tmpfs", MS_NOSUID | MS_NODEV, run_data);
    if (o->hosts) bind_file(o->hosts, root, "/etc/hosts", o);
    if (o->hostname_file) bind_file(o->hostname_file, root, "/etc/hostname", o);
    node_mounts(o, root);
    /* pivot_root(".", ".") then detaching "." drops the old root and all it carried. */
    if (chdir(root) < 0) die("chdir %s", root);
    if (syscall(SYS_pivot_root, ".", ".") < 0) die("pivot_root %s", root);
    if (umount2(".", MNT_DETACH) < 0) die("detach the old root");
    if (chdir("/") < 0) die("chdir /");
}

/* Written through the clone of the host's /proc that mount_own_proc gets, when there is
 * one: stage 1's tree has no /proc of its own then. */
static void write_id_maps(pid_t pid, long base) {
    char map[64], path[64];
    int proc = host_proc >= 0 ? host_proc : AT_FDCWD;
    const char *files[] = {"uid_map", "gid_map"};
    snprintf(map, sizeof map, "0 %ld 65536\n", base);
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s%d/%s", proc == AT_FDCWD ? "/proc/" : "", pid, files[i]);
        if (try_write_file_at(proc, path, map) < 0) die("write the id maps of %d", pid);
    }
}

static void become_root_inside(void) {
    if (setresgid(0, 0, 0) < 0) die("setresgid");
    if (setresuid(0, 0, 0) < 0) die("setresuid");
    setgroups(0, NULL); /* refused once setgroups is denied; not needed then */
}

/* Environment: labmgr's defaults, then the node's own (which wins). */
static char **environment(struct options *o) {
    static char *env[MAX_LIST * 4 + 8];
    static char hostname[300];
    int n = 0;
    env[n++] = "PATH=" DEFAULT_PATH;
    env[n++] = "HOME=/root";
    if (o->hostname) {
        snprintf(hostname, sizeof hostname, "HOSTNAME=%s", o->hostname);
        env[n++] = hostname;
    }
    for (int i = 0; i < o->nenv; i++) {
        size_t key = strcspn(o->env[i], "=");
        for (int j = 0; j < n; j++)
            if (!strncmp(env[j], o->env[i], key + 1)) { env[j] = env[--n]; break; }
        env[n++] = o->env[i];
    }
    env[n] = NULL;
    return env;
}

/* Every signal as a new program expects it. Whoever started the agent or the command
 * line may have ignored some (`nohup` ignores SIGHUP, `cmd &` SIGINT and SIGQUIT), and an
 * ignored signal stays ignored across exec: a node's shell would then never see ^C. */
static void default_signals(void) {
    /* The kernel's own call: the C library refuses the two real-time signals it keeps
     * for itself (32 and 33), which a caller may still have ignored. */
    struct {
        void (*handler)(int);
        unsigned long flags;
        void (*restorer)(void);
        unsigned long mask;
    } dfl = {SIG_DFL, 0, NULL, 0};
    for (int s = 1; s < _NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP) syscall(SYS_rt_sigaction, s, &dfl, NULL, sizeof dfl.mask);
}

static void exec_command(struct options *o, int report_fd, int own_group) {
    sigset_t none;
    default_signals();
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (own_group) setpgid(0, 0); /* the init forwards signals to the whole group */
    if (o->workdir && chdir(o->workdir) < 0) {
        dprintf(report_fd, "cannot enter workdir %s: %s", o->workdir, strerror(errno));
        _exit(127);
    }
    if (o->uid >= 0) {
        gid_t gid = (gid_t)o->gid;
        if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 ||
            setresuid((uid_t)o->uid, (uid_t)o->uid, (uid_t)o->uid) < 0) {
            dprintf(report_fd, "cannot become user %ld:%ld: %s", o->uid, o->gid, strerror(errno));
            _exit(127);
        }
    }
    char **env = environment(o);
    for (char **e = env; *e; e++)
        if (!strncmp(*e, "PATH=", 5)) setenv("PATH", *e + 5, 1); /* for execvpe's search */
    execvpe(o->command[0], o->command, env);
    dprintf(report_fd, "cannot run %s: %s", o->command[0], strerror(errno));
    _exit(127);
}

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};

/* PID 1 of the node: reap every zombie, forward signals, keep the node up. */
static void init_loop(pid_t command) {
    sigset_t all;
    sigfillset(&all);
    int stopping = 0;
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(&all, &info);
        if (sig < 0) continue;
        if (sig == SIGCHLD) {
            int status;
            pid_t pid;
            while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                if (pid == command) {
                    fprintf(stderr, "lminit: command exited with status %d\n",
                            WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
                    command = 0;
                    if (stopping) _exit(0);
                }
            }
            continue;
        }
        int forward = 0;
        for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++) forward |= sig == forwarded[i];
        if (!forward) continue;
        int stop = sig == SIGTERM || sig == SIGINT || sig == SIGHUP;
        if (command > 0) {
            kill(-command, sig);
            stopping |= stop;
        } else if (stop) {
            _exit(0);
        }
    }
}

static void attach(int mount_fd, const char *target) {
    if (syscall(SYS_move_mount, mount_fd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
        die("attach a mount on %s (move_mount)", target);
    close(mount_fd);
}

/* The init's /proc: its own PID namespace's, twice, one on the other, so that a node
 * which unmounts its /proc finds its own again below and never the host's.
 *
 * The kernel lets a user namespace mount a proc only while a full one is visible in its
 * mount namespace. The host's stays out of the tree (a mount copied into the node's
 * namespace would be locked there, for the node to uncover by unmounting what covers
 * it): stage 1 hands over a detached clone, attached here only until the node's own proc
 * exists, then detached again, all before the node's command starts. */
static void mount_own_proc(void) {
    int host = host_proc;
    host_proc = -1;
    if (host >= 0) attach(host, "/proc");
    int fs = (int)syscall(SYS_fsopen, "proc", FSOPEN_CLOEXEC);
    if (fs < 0) die("fsopen proc");
    if (syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "source", "proc", 0) < 0 ||
        syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        die("create a proc");
    int own = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC,
                           MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
    if (own < 0) die("mount the node's proc (fsmount)");
    close(fs);
    if (host >= 0 && umount2("/proc", MNT_DETACH) < 0) die("detach the host's /proc");
    attach(own, "/proc");
    mnt("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

static int init_main(struct options *o, int sync_fd) {
    char byte;
    if (read(sync_fd, &byte, 1) != 1) die("stage 1 went away");
    close(sync_fd);
    if (o->clone_flags & CLONE_NEWUSER) become_root_inside();
    if (o->clone_flags & CLONE_NEWNS) {
        mnt(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
        if (o->clone_flags & CLONE_NEWPID) mount_own_proc();
    }
    if ((o->clone_flags & CLONE_NEWUTS) && o->hostname &&
        sethostname(o->hostname, strlen(o->hostname)) < 0)
        die("sethostname");
    setsid();
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) { dup2(null, 0); close(null); }
    if (chdir("/") < 0) die("chdir /");
    pid_t command = 0;
    if (o->command && o->command[0]) {
        int report[2];
        if (pipe2(report, O_CLOEXEC) < 0) die("pipe");
        command = fork();
        if (command < 0) die("fork the command");
        if (command == 0) exec_command(o, report[1], 1);
        close(report[1]);
        char msg[512];
        ssize_t n = read(report[0], msg, sizeof msg - 1);
        close(report[0]);
        if (n > 0) {
            msg[n] = 0;
            errno = 0;
            die("%s", msg);
        }
    }
    if (write(status_fd, "", 1) != 1) _exit(125); /* ready */
    close(status_fd);
    status_fd = -1;
    init_loop(command);
    return 0;
}

static int spawn(struct options *o) {
    if (!o->netns || !(o->rootfs || o->image) || !o->scratch) {
        errno = 0;
        die("spawn needs --netns, --rootfs or --image, --scratch");
    }
    if (o->log) {
        log_fd = open(o->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (log_fd < 0) die("open log %s", o->log);
    }
    join_cgroups(o);
    /* Opened first: the small mount namespace has no /run/netns. */
    int netns = open_ns(o->netns);
    if (o->mntns) join_ns(open_ns(o->mntns), CLONE_NEWNS, o->mntns);
    join_ns(netns, CLONE_NEWNET, o->netns);
    if (o->clone_flags & CLONE_NEWNS) build_root(o);
    int sync[2], status[2];
    if (pipe2(sync, O_CLOEXEC) < 0 || pipe2(status, O_CLOEXEC) < 0) die("pipe");
    fflush(NULL);
    pid_t pid = (pid_t)syscall(SYS_clone, (unsigned long)o->clone_flags | SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid < 0) die("clone");
    if (pid == 0) {
        close(sync[1]);
        close(status[0]);
        status_fd = status[1];
        if (log_fd >= 0) {
            dup2(log_fd, 1);
            dup2(log_fd, 2);
            close(log_fd);
        }
        return init_main(o, sync[0]);
    }
    close(sync[0]);
    close(status[1]);
    if (o->clone_flags & CLONE_NEWUSER) write_id_maps(pid, o->uid_base);
    if (host_proc >= 0) close(host_proc); /* the init holds its own copy */
    if (write(sync[1], "", 1) != 1) die("start the init");
    char msg[512];
    ssize_t n = read(status[0], msg, sizeof msg - 1);
    if (n != 1 || msg[0] != 0) {
        msg[n > 0 ? n : 0] = 0;
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fprintf(stderr, "lminit: %s\n", n > 0 ? msg : "the node's init died while starting");
        return 1;
    }
    printf("%d\n", pid);
    return 0;
}

/* The start time of a live process, in clock ticks after boot (field 22 of
 * /proc/PID/stat), or -1 when there is none or only its zombie. */
static long start_ticks(pid_t pid) {
    char path[64], stat[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, stat, sizeof stat - 1);
    close(fd);
    if (n <= 0) return -1;
    stat[n] = 0;
    /* Fields count from after the command name, which may hold spaces and parentheses:
     * the state (field 3), then 19 more to the start time. */
    char *field = strrchr(stat, ')');
    if (field == NULL || field[1] != ' ') return -1;
    field += 2;
    if (*field == 'Z' || *field == 'X') return -1;
    for (int i = 0; i < 19; i++) {
        field = strchr(field, ' ');
        if (field == NULL) return -1;
        field++;
    }
    return strtol(field, NULL, 10);
}

static void gone(struct options *o) {
    fprintf(stderr, "lminit: the node is not running: its init (pid %d, started at %ld) is gone\n",
            o->pid, o->start);
    _exit(127);
}

/* Join every namespace of a running node's init that differs from ours, then its
 * cgroups, and run the command there as a child (a PID namespace applies to children).
 *
 * The init is named by its pid and its start time, which a later process reusing the pid
 * cannot have: a pidfd pins the process the pid names now, its start time must be the
 * init's, and only once the namespaces are open is the pidfd's process checked to be
 * still alive, so the pid named that same process all along. Anything else: the node is
 * gone, and nothing of it (or of whoever has its pid now) is entered. */
static int enter(struct options *o) {
    static const struct { const char *name; int flag; } kinds[] = {
        /* The user namespace last: the netns belongs to the host's user namespace, so it
         * must be joined while the host's capabilities are still held. */
        {"net", CLONE_NEWNET}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}, {"pid", CLONE_NEWPID},
        {"cgroup", CLONE_NEWCGROUP}, {"mnt", CLONE_NEWNS}, {"user", CLONE_NEWUSER},
    };
    int fds[7], joined_user = 0;
    if (o->pid <= 0 || o->start <= 0 || !o->command || !o->command[0]) {
        errno = 0;
        die("exec needs --pid, --start and a command");
    }
    int pidfd = (int)syscall(SYS_pidfd_open, o->pid, 0);
    if (pidfd < 0 || start_ticks(o->pid) != o->start) gone(o);
    for (int i = 0; i < 7; i++) {
        char theirs[64], ours[64];
        struct stat a, b;
        snprintf(theirs, sizeof theirs, "/proc/%d/ns/%s", o->pid, kinds[i].name);
        snprintf(ours, sizeof ours, "/proc/self/ns/%s", kinds[i].name);
        fds[i] = -1;
        if (stat(theirs, &a) < 0) gone(o);
        if (stat(ours, &b) == 0 && a.st_ino == b.st_ino) continue;
        fds[i] = open(theirs, O_RDONLY | O_CLOEXEC);
        if (fds[i] < 0) gone(o);
    }
    if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0) gone(o);
    close(pidfd);
    join_cgroups(o);
    for (int i = 0; i < 7; i++) {
        if (fds[i] < 0) continue;
        if (setns(fds[i], kinds[i].flag) < 0) die("enter the %s namespace", kinds[i].name);
        joined_user |= kinds[i].flag == CLONE_NEWUSER;
        close(fds[i]);
    }
    if (joined_user) become_root_inside();
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        if (!o->workdir) o->workdir = "/";
        exec_command(o, 2, 0); /* stays in the terminal's foreground group */
    }
    for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++) signal(forwarded[i], SIG_IGN);
    int status;
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR) die("wait");
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* A private copy of the host's mount namespace without /run/netns and what is under it,
 * held until stdin closes: the agent's spawns join it (see --mntns). */
static int hold_mntns(void) {
    if (unshare(CLONE_NEWNS) < 0) die("unshare mount namespace");
    mnt(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    while (umount2("/run/netns", MNT_DETACH) == 0) {
        /* mounted more than once: detach every layer */
    }
    if (errno != EINVAL && errno != ENOENT) die("detach /run/netns");
    if (write(1, "ready\n", 6) != 6) return 1;
    char byte;
    while (read(0, &byte, 1) > 0) {
    }
    return 0;
}

int main(int argc, char **argv) {
    struct options o;
    if (argc < 2) { fprintf(stderr, "usage: lminit spawn|exec|mntns [options] -- CMD...\n"); return 2; }
    if (!strcmp(argv[1], "mntns")) return hold_mntns();
    parse(argc, argv, &o);
    if (!strcmp(argv[1], "spawn")) return spawn(&o);
    if (!strcmp(argv[1], "exec")) return enter(&o);
    fprintf(stderr, "lminit: unknown mode %s\n", argv[1]);
    return 2;
}
