/*
 * lminit: a labmgr node's init, and the helper that enters a running node.
 *
 *   lminit spawn [options] [-- CMD...]   start a node; prints the init's pid (host view)
 *   lminit exec --pid PID [options] -- CMD...   run CMD inside a running node
 *   lminit mntns   hold a small mount namespace for spawns until stdin closes
 *
 * spawn runs in two stages. Stage 1 (the process the agent starts, root on the host)
 * joins the node's cgroups and network namespace, makes a private mount namespace in
 * which it builds the node's root (the host tree read-only under an overlay whose
 * writable layer is a tmpfs, or a given directory), /dev, /sys, /tmp, /run, /etc/hosts
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
 * The init (PID 1 of its namespace) mounts /proc, sets the hostname, starts the node's
 * command in the work directory with its environment, then reaps every zombie and
 * forwards signals to the command. The node outlives its command: it stops when it is
 * killed, or when it is asked to stop (SIGTERM/SIGINT/SIGHUP) and its command is gone.
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
#include <unistd.h>

#define MAX_LIST 64
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct options {
    const char *netns, *mntns, *hostname, *rootfs, *hosts, *hostname_file, *scratch, *log, *workdir;
    const char *cgroups[MAX_LIST];
    int ncgroups;
    char *env[MAX_LIST * 4];
    int nenv;
    long uid_base;
    int clone_flags;
    pid_t pid;
    char **command;
};

static int status_fd = -1; /* where the init reports "ready" or an error to stage 1 */
static int log_fd = -1;    /* the node's log: the init's and the command's output */

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

static void write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) die("open %s", path);
    if (write(fd, text, strlen(text)) < 0) die("write %s", path);
    close(fd);
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
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) { o->command = &argv[i + 1]; return; }
        if (i + 1 >= argc) { errno = 0; die("%s needs a value", a); }
        char *v = argv[++i];
        if (!strcmp(a, "--netns")) o->netns = v;
        else if (!strcmp(a, "--mntns")) o->mntns = v;
        else if (!strcmp(a, "--hostname")) o->hostname = v;
        else if (!strcmp(a, "--rootfs")) o->rootfs = v;
        else if (!strcmp(a, "--hosts")) o->hosts = v;
        else if (!strcmp(a, "--hostname-file")) o->hostname_file = v;
        else if (!strcmp(a, "--scratch")) o->scratch = v;
        else if (!strcmp(a, "--log")) o->log = v;
        else if (!strcmp(a, "--workdir")) o->workdir = v;
        else if (!strcmp(a, "--uid-base")) o->uid_base = atol(v);
        else if (!strcmp(a, "--pid")) o->pid = (pid_t)atol(v);
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

static void bind_file(const char *src, const char *root, const char *rel) {
    char dst[4096];
    struct stat st;
    path_join(dst, sizeof dst, root, rel);
    if (stat(dst, &st) < 0) {
        int fd = open(dst, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd < 0) return; /* a read-only tree without /etc: nothing to put it on */
        close(fd);
    }
    mnt(src, dst, NULL, MS_BIND, NULL);
}

/* Stage 1: the node's root, built in a mount namespace that only the node will use. */
static void build_root(struct options *o) {
    char root[4096], p[4096];
    if (unshare(CLONE_NEWNS) < 0) die("unshare mount namespace");
    mnt(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    if (!strcmp(o->rootfs, "host")) {
        /* The writable layer is a tmpfs: on another filesystem than the lower "/" (so
         * the layers do not overlap) and gone with the node. */
        mnt("lmnode", o->scratch, "tmpfs", 0, "mode=0700");
        const char *subdirs[] = {"upper", "work", "root"};
        for (int i = 0; i < 3; i++) {
            path_join(p, sizeof p, o->scratch, "/");
            strncat(p, subdirs[i], sizeof p - strlen(p) - 1);
            if (mkdir(p, 0755) < 0) die("mkdir %s", p);
        }
        char data[8192];
        snprintf(data, sizeof data, "lowerdir=/,upperdir=%s/upper,workdir=%s/work", o->scratch,
                 o->scratch);
        path_join(root, sizeof root, o->scratch, "/root");
        mnt("overlay", root, "overlay", 0, data);
    } else {
        snprintf(root, sizeof root, "%s", o->rootfs);
        mnt(root, root, NULL, MS_BIND | MS_REC, NULL);
    }
    /* The host's /proc stays under the node's own: the kernel lets a user namespace
     * mount a proc only where a full one is already visible. */
    path_join(p, sizeof p, root, "/proc");
    mnt("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
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
    mnt("lmrun", p, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
    if (o->hosts) bind_file(o->hosts, root, "/etc/hosts");
    if (o->hostname_file) bind_file(o->hostname_file, root, "/etc/hostname");
    /* pivot_root(".", ".") then detaching "." drops the old root and all it carried. */
    if (chdir(root) < 0) die("chdir %s", root);
    if (syscall(SYS_pivot_root, ".", ".") < 0) die("pivot_root %s", root);
    if (umount2(".", MNT_DETACH) < 0) die("detach the old root");
    if (chdir("/") < 0) die("chdir /");
}

static void write_id_maps(pid_t pid, long base) {
    char path[64], map[64];
    snprintf(map, sizeof map, "0 %ld 65536\n", base);
    snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
    write_file(path, map);
    snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
    write_file(path, map);
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

static void exec_command(struct options *o, int report_fd, int own_group) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (own_group) setpgid(0, 0); /* the init forwards signals to the whole group */
    if (o->workdir && chdir(o->workdir) < 0) {
        dprintf(report_fd, "cannot enter workdir %s: %s", o->workdir, strerror(errno));
        _exit(127);
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

static int init_main(struct options *o, int sync_fd) {
    char byte;
    if (read(sync_fd, &byte, 1) != 1) die("stage 1 went away");
    close(sync_fd);
    if (o->clone_flags & CLONE_NEWUSER) become_root_inside();
    if (o->clone_flags & CLONE_NEWNS) {
        mnt(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
        if (o->clone_flags & CLONE_NEWPID) mnt("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
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
    if (!o->netns || !o->rootfs || !o->scratch) { errno = 0; die("spawn needs --netns, --rootfs, --scratch"); }
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

/* Join every namespace of a running node's init that differs from ours, then its
 * cgroups, and run the command there as a child (a PID namespace applies to children). */
static int enter(struct options *o) {
    static const struct { const char *name; int flag; } kinds[] = {
        /* The user namespace last: the netns belongs to the host's user namespace, so it
         * must be joined while the host's capabilities are still held. */
        {"net", CLONE_NEWNET}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}, {"pid", CLONE_NEWPID},
        {"cgroup", CLONE_NEWCGROUP}, {"mnt", CLONE_NEWNS}, {"user", CLONE_NEWUSER},
    };
    int fds[7], joined_user = 0;
    if (o->pid <= 0 || !o->command || !o->command[0]) { errno = 0; die("exec needs --pid and a command"); }
    join_cgroups(o);
    for (int i = 0; i < 7; i++) {
        char theirs[64], ours[64];
        struct stat a, b;
        snprintf(theirs, sizeof theirs, "/proc/%d/ns/%s", o->pid, kinds[i].name);
        snprintf(ours, sizeof ours, "/proc/self/ns/%s", kinds[i].name);
        fds[i] = -1;
        if (stat(theirs, &a) < 0) die("node process %d", o->pid);
        if (stat(ours, &b) == 0 && a.st_ino == b.st_ino) continue;
        fds[i] = open(theirs, O_RDONLY | O_CLOEXEC);
        if (fds[i] < 0) die("open %s", theirs);
    }
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
