/*
 * Every call's error paths from C, on an unplugged 82599 model (no root,
 * no TAP): calls before mtcp_init, bad and stale contexts, bad and closed
 * ids, wrong families and types, null pointers, short lengths, unknown
 * options; plus the pipe across threads and a registered signal
 * interrupting a wait.
 *
 * usage: errors GOOD.conf UNKNOWN-KEY.conf DPDK-PORT.conf
 * Prints one line per failed check and "errors: N checks passed" at the
 * end; exits 1 if any check failed.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include <mtcp_api.h>
#include <mtcp_epoll.h>

static int checks, failed;

/* The call returned -1 (or NULL) with errno `want`. */
#define FAILS(call, want)                                                    \
	do {                                                                     \
		errno = 0;                                                           \
		long r_ = (long)(call);                                              \
		int e_ = errno;                                                      \
		checks++;                                                            \
		if (r_ != -1 || e_ != (want)) {                                      \
			failed++;                                                        \
			printf("FAIL line %d: %s returned %ld, errno %d (%s); want -1, " \
			       "errno %d (%s)\n",                                        \
			       __LINE__, #call, r_, e_, strerror(e_), (want),           \
			       strerror(want));                                          \
		}                                                                    \
	} while (0)

#define NULL_WITH(call, want)                                                \
	do {                                                                     \
		errno = 0;                                                           \
		void *p_ = (void *)(call);                                           \
		int e_ = errno;                                                      \
		checks++;                                                            \
		if (p_ != NULL || e_ != (want)) {                                    \
			failed++;                                                        \
			printf("FAIL line %d: %s returned %p, errno %d (%s); want "     \
			       "NULL, errno %d\n",                                       \
			       __LINE__, #call, p_, e_, strerror(e_), (want));           \
		}                                                                    \
	} while (0)

#define CHECK(cond)                                                          \
	do {                                                                     \
		checks++;                                                            \
		if (!(cond)) {                                                       \
			failed++;                                                        \
			printf("FAIL line %d: %s (errno %d: %s)\n", __LINE__, #cond,    \
			       errno, strerror(errno));                                  \
		}                                                                    \
	} while (0)

static struct sockaddr_in sin_of(const char *ip, int port)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	inet_pton(AF_INET, ip, &a.sin_addr);
	return a;
}

static volatile sig_atomic_t got_signal;

static void on_usr1(int sig)
{
	got_signal = sig;
}

struct writer_arg {
	mctx_t mctx;
	int wid;
	int rid;
	int rc;
	int foreign_errno;
	int foreign_write_errno;
	int foreign_close_errno;
};

/* A thread of its own writes to the pipe with the owner's context, and
 * finds every other call with that context refused. */
static void *writer(void *p)
{
	struct writer_arg *a = p;
	errno = 0;
	a->foreign_errno = mtcp_socket(a->mctx, AF_INET, SOCK_STREAM, 0) == -1 ? errno : 0;
	errno = 0;
	/* The read end is the owner's alone. */
	a->foreign_write_errno = mtcp_write(a->mctx, a->rid, "x", 1) == -1 ? errno : 0;
	errno = 0;
	a->foreign_close_errno = mtcp_close(a->mctx, a->rid) == -1 ? errno : 0;
	a->rc = (int)mtcp_write(a->mctx, a->wid, "ping", 4);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s GOOD.conf UNKNOWN-KEY.conf DPDK-PORT.conf\n", argv[0]);
		return 2;
	}
	struct mtcp_conf conf;
	struct mtcp_context fake = {0};
	struct sockaddr_in a = sin_of("10.99.0.1", 80);
	struct mtcp_epoll_event ev, evs[8];
	socklen_t len;
	int v;
	char buf[64];

	/* ---- before mtcp_init */
	FAILS(mtcp_socket(NULL, AF_INET, SOCK_STREAM, 0), EINVAL);
	FAILS(mtcp_socket(&fake, AF_INET, SOCK_STREAM, 0), EINVAL);
	FAILS(mtcp_close(&fake, 0), EINVAL);
	FAILS(mtcp_epoll_create(&fake, 1), EINVAL);
	FAILS(mtcp_pipe(&fake, (int[2]){0, 0}), EINVAL);
	NULL_WITH(mtcp_create_context(0), EPERM);
	FAILS(mtcp_getconf(NULL), EINVAL);
	FAILS(mtcp_setconf(NULL), EINVAL);
	CHECK(mtcp_getconf(&conf) == 0 && conf.num_cores >= 1);
	conf.num_cores = 1;
	conf.max_concurrency = 100;
	CHECK(mtcp_setconf(&conf) == 0);
	conf.num_cores = 99;
	FAILS(mtcp_setconf(&conf), EINVAL);
	CHECK(mtcp_getconf(&conf) == 0 && conf.num_cores == 1 && conf.max_concurrency == 100);
	FAILS(mtcp_init(NULL), EINVAL);
	FAILS(mtcp_init("/nonexistent/mtcp.conf"), EINVAL);
	FAILS(mtcp_init(argv[2]), EINVAL);
	FAILS(mtcp_init(argv[3]), EINVAL);
	FAILS(mtcp_core_affinitize(-1), EINVAL);
	FAILS(mtcp_core_affinitize(1 << 20), EINVAL);
	mtcp_destroy(); /* nothing to destroy: harmless */

	/* ---- init */
	CHECK(mtcp_init(argv[1]) == 0);
	FAILS(mtcp_init(argv[1]), EEXIST);
	FAILS(mtcp_setconf(&conf), EBUSY);
	CHECK(mtcp_getconf(&conf) == 0 && conf.num_cores == 1 && conf.max_concurrency == 100);
	NULL_WITH(mtcp_create_context(-1), EINVAL);
	NULL_WITH(mtcp_create_context(1), EINVAL);
	mctx_t mctx = mtcp_create_context(0);
	CHECK(mctx != NULL && mctx->cpu == 0);
	NULL_WITH(mtcp_create_context(0), EEXIST);
	FAILS(mtcp_socket(&fake, AF_INET, SOCK_STREAM, 0), EINVAL);

	/* ---- sockets */
	FAILS(mtcp_socket(mctx, AF_INET6, SOCK_STREAM, 0), EAFNOSUPPORT);
	FAILS(mtcp_socket(mctx, AF_UNIX, SOCK_STREAM, 0), EAFNOSUPPORT);
	FAILS(mtcp_socket(mctx, AF_INET, SOCK_DGRAM, 0), EINVAL);
	FAILS(mtcp_socket(mctx, AF_INET, SOCK_STREAM, IPPROTO_UDP), EPROTONOSUPPORT);
	int s = mtcp_socket(mctx, AF_INET, SOCK_STREAM, 0);
	CHECK(s >= 0);
	FAILS(mtcp_bind(mctx, s, NULL, sizeof(a)), EFAULT);
	FAILS(mtcp_bind(mctx, s, (struct sockaddr *)&a, sizeof(a) - 1), EINVAL);
	struct sockaddr_in six = a;
	six.sin_family = AF_INET6;
	FAILS(mtcp_bind(mctx, s, (struct sockaddr *)&six, sizeof(six)), EAFNOSUPPORT);
	FAILS(mtcp_listen(mctx, s, 16), EDESTADDRREQ);
	FAILS(mtcp_read(mctx, s, buf, sizeof(buf)), ENOTCONN);
	FAILS(mtcp_write(mctx, s, "x", 1), ENOTCONN);
	FAILS(mtcp_read(mctx, s, NULL, 10), EFAULT);
	FAILS(mtcp_write(mctx, s, NULL, 10), EFAULT);
	FAILS(mtcp_recv(mctx, s, buf, sizeof(buf), MSG_OOB), EOPNOTSUPP);
	FAILS(mtcp_readv(mctx, s, NULL, -1), EINVAL);
	FAILS(mtcp_writev(mctx, s, NULL, 1), EFAULT);
	FAILS(mtcp_getpeername(mctx, s, (struct sockaddr *)&a, &len), ENOTCONN);
	FAILS(mtcp_abort(mctx, s), ENOTCONN);
	CHECK(mtcp_bind(mctx, s, (struct sockaddr *)&a, sizeof(a)) == 0);
	FAILS(mtcp_bind(mctx, s, (struct sockaddr *)&a, sizeof(a)), EINVAL);
	len = sizeof(a);
	FAILS(mtcp_getsockname(mctx, s, NULL, &len), EFAULT);
	FAILS(mtcp_getsockname(mctx, s, (struct sockaddr *)&a, NULL), EFAULT);
	len = 4;
	FAILS(mtcp_getsockname(mctx, s, (struct sockaddr *)&a, &len), EINVAL);

	/* ---- options */
	len = sizeof(v);
	CHECK(mtcp_getsockopt(mctx, s, SOL_SOCKET, SO_ERROR, &v, &len) == 0 && v == 0);
	len = 2;
	FAILS(mtcp_getsockopt(mctx, s, SOL_SOCKET, SO_ERROR, &v, &len), EINVAL);
	FAILS(mtcp_getsockopt(mctx, s, SOL_SOCKET, SO_ERROR, NULL, &len), EFAULT);
	len = sizeof(v);
	FAILS(mtcp_getsockopt(mctx, s, SOL_SOCKET, SO_BROADCAST, &v, &len), ENOPROTOOPT);
	v = 1;
	FAILS(mtcp_setsockopt(mctx, s, SOL_SOCKET, SO_BROADCAST, &v, sizeof(v)), ENOPROTOOPT);
	FAILS(mtcp_setsockopt(mctx, s, IPPROTO_TCP, TCP_NODELAY, NULL, sizeof(v)), EFAULT);
	FAILS(mtcp_setsockopt(mctx, s, IPPROTO_TCP, TCP_NODELAY, &v, 1), EINVAL);
	v = 0;
	FAILS(mtcp_setsockopt(mctx, s, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v)), EINVAL);
	v = 1;
	CHECK(mtcp_setsockopt(mctx, s, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v)) == 0);
	CHECK(mtcp_setsockopt(mctx, s, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof(v)) == 0);
	v = 32768;
	CHECK(mtcp_setsockopt(mctx, s, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v)) == 0);
	v = -1;
	len = sizeof(v);
	CHECK(mtcp_getsockopt(mctx, s, IPPROTO_TCP, TCP_NODELAY, &v, &len) == 0 && v == 1);
	CHECK(mtcp_getsockopt(mctx, s, SOL_SOCKET, SO_RCVBUF, &v, &len) == 0 && v == 32768);

	/* ---- listening */
	FAILS(mtcp_socket_ioctl(mctx, s, FIONREAD, NULL), EFAULT);
	FAILS(mtcp_socket_ioctl(mctx, s, 0x1234, &v), EINVAL);
	CHECK(mtcp_listen(mctx, s, 16) == 0);
	CHECK(mtcp_setsock_nonblock(mctx, s) == 0);
	FAILS(mtcp_accept(mctx, s, NULL, NULL), EAGAIN);
	len = 3;
	FAILS(mtcp_accept(mctx, s, (struct sockaddr *)&a, &len), EINVAL);
	FAILS(mtcp_accept(mctx, s, (struct sockaddr *)&a, NULL), EFAULT);
	v = 7;
	CHECK(mtcp_socket_ioctl(mctx, s, FIONREAD, &v) == 0 && v == 0);
	len = sizeof(a);
	CHECK(mtcp_getsockname(mctx, s, (struct sockaddr *)&a, &len) == 0 && ntohs(a.sin_port) == 80 &&
	      len == sizeof(a));
	FAILS(mtcp_abort(mctx, s), ENOTCONN);
	int s2 = mtcp_socket(mctx, AF_INET, SOCK_STREAM, 0);
	a = sin_of("10.99.0.1", 80);
	CHECK(mtcp_bind(mctx, s2, (struct sockaddr *)&a, sizeof(a)) == 0);
	FAILS(mtcp_listen(mctx, s2, 16), EADDRINUSE);
	CHECK(mtcp_close(mctx, s2) == 0);

	/* ---- bad and closed ids */
	FAILS(mtcp_read(mctx, -1, buf, sizeof(buf)), EBADF);
	FAILS(mtcp_read(mctx, 9999, buf, sizeof(buf)), EBADF);
	FAILS(mtcp_write(mctx, 9999, "x", 1), EBADF);
	FAILS(mtcp_close(mctx, 9999), EBADF);
	FAILS(mtcp_listen(mctx, 9999, 1), EBADF);
	FAILS(mtcp_setsock_nonblock(mctx, 9999), EBADF);
	FAILS(mtcp_epoll_ctl(mctx, 9999, MTCP_EPOLL_CTL_ADD, s, &ev), EBADF);
	CHECK(mtcp_close(mctx, s) == 0);
	FAILS(mtcp_close(mctx, s), EBADF);
	FAILS(mtcp_accept(mctx, s, NULL, NULL), EBADF);
	FAILS(mtcp_getsockname(mctx, s, (struct sockaddr *)&a, &len), EBADF);

	/* ---- connecting (nobody is plugged in: it stays in progress) */
	int c = mtcp_socket(mctx, AF_INET, SOCK_STREAM, 0);
	CHECK(mtcp_setsock_nonblock(mctx, c) == 0);
	FAILS(mtcp_connect(mctx, c, NULL, sizeof(a)), EFAULT);
	struct sockaddr_in zero = sin_of("10.99.0.2", 0);
	FAILS(mtcp_connect(mctx, c, (struct sockaddr *)&zero, sizeof(zero)), EINVAL);
	struct sockaddr_in peer = sin_of("10.99.0.2", 7);
	FAILS(mtcp_connect(mctx, c, (struct sockaddr *)&peer, sizeof(peer)), EINPROGRESS);
	FAILS(mtcp_connect(mctx, c, (struct sockaddr *)&peer, sizeof(peer)), EALREADY);
	FAILS(mtcp_read(mctx, c, buf, sizeof(buf)), EAGAIN);
	FAILS(mtcp_write(mctx, c, "x", 1), EAGAIN);
	len = sizeof(v);
	CHECK(mtcp_getsockopt(mctx, c, SOL_SOCKET, SO_ERROR, &v, &len) == 0 && v == 0);
	FAILS(mtcp_getpeername(mctx, c, (struct sockaddr *)&a, &len), ENOTCONN);
	CHECK(mtcp_init_rss(mctx, INADDR_ANY, 1, peer.sin_addr.s_addr, peer.sin_port) == 0);
	FAILS(mtcp_init_rss(mctx, INADDR_ANY, 4, peer.sin_addr.s_addr, peer.sin_port), EINVAL);
	FAILS(mtcp_init_rss(&fake, INADDR_ANY, 1, peer.sin_addr.s_addr, peer.sin_port), EINVAL);
	CHECK(mtcp_abort(mctx, c) == 0);
	FAILS(mtcp_abort(mctx, c), EBADF);

	/* ---- epoll */
	FAILS(mtcp_epoll_create(mctx, 0), EINVAL);
	FAILS(mtcp_epoll_create1(mctx, 12345), EINVAL);
	int ep = mtcp_epoll_create(mctx, 16);
	CHECK(ep >= 0);
	int ep1 = mtcp_epoll_create1(mctx, 0);
	CHECK(ep1 >= 0 && ep1 != ep);
	s = mtcp_socket(mctx, AF_INET, SOCK_STREAM, 0);
	ev.events = MTCP_EPOLLIN;
	ev.data.sockid = s;
	FAILS(mtcp_epoll_ctl(mctx, ep, 99, s, &ev), EINVAL);
	FAILS(mtcp_epoll_ctl(mctx, ep, MTCP_EPOLL_CTL_ADD, s, NULL), EFAULT);
	FAILS(mtcp_epoll_ctl(mctx, s, MTCP_EPOLL_CTL_ADD, ep, &ev), EINVAL);
	FAILS(mtcp_epoll_ctl(mctx, ep, MTCP_EPOLL_CTL_ADD, ep, &ev), EINVAL);
	FAILS(mtcp_epoll_ctl(mctx, ep, MTCP_EPOLL_CTL_ADD, ep1, &ev), EPERM);
	FAILS(mtcp_epoll_ctl(mctx, ep, MTCP_EPOLL_CTL_DEL, s, NULL), ENOENT);
	FAILS(mtcp_epoll_ctl(mctx, ep, MTCP_EPOLL_CTL_MOD, s, &ev), ENOENT);
	FAILS(mtcp_epoll_ctl(mctx, ep, MTCP_EPOLL_CTL_ADD, 9999, &ev), EBADF);
	CHECK(mtcp_epoll_ctl(mctx, ep, MTCP_EPOLL_CTL_ADD, s, &ev) == 0);
	FAILS(mtcp_epoll_ctl(mctx, ep, MTCP_EPOLL_CTL_ADD, s, &ev), EEXIST);
	ev.events = MTCP_EPOLLIN | MTCP_EPOLLET;
	CHECK(mtcp_epoll_ctl(mctx, ep, MTCP_EPOLL_CTL_MOD, s, &ev) == 0);
	CHECK(mtcp_epoll_ctl(mctx, ep, MTCP_EPOLL_CTL_DEL, s, NULL) == 0);
	FAILS(mtcp_epoll_wait(mctx, ep, NULL, 8, 0), EFAULT);
	FAILS(mtcp_epoll_wait(mctx, ep, evs, 0, 0), EINVAL);
	FAILS(mtcp_epoll_wait(mctx, s, evs, 8, 0), EINVAL);
	FAILS(mtcp_epoll_wait(mctx, 9999, evs, 8, 0), EBADF);
	CHECK(mtcp_epoll_wait(mctx, ep, evs, 8, 0) == 0);
	CHECK(mtcp_epoll_wait(mctx, ep, evs, 8, 10) == 0);
	/* A huge maxevents is not a huge allocation. */
	CHECK(mtcp_epoll_wait(mctx, ep, evs, 0x7fffffff, 0) == 0);
	CHECK(mtcp_close(mctx, ep1) == 0);
	FAILS(mtcp_epoll_wait(mctx, ep1, evs, 8, 0), EBADF);
	CHECK(strcmp(EventToString(MTCP_EPOLLIN | MTCP_EPOLLOUT | MTCP_EPOLLET), "IN|OUT|ET") == 0);

	/* ---- pipe, written from another thread */
	int pfd[2] = {-1, -1};
	FAILS(mtcp_pipe(mctx, NULL), EFAULT);
	CHECK(mtcp_pipe(mctx, pfd) == 0 && pfd[0] >= 0 && pfd[1] >= 0 && pfd[0] != pfd[1]);
	FAILS(mtcp_read(mctx, pfd[0], buf, sizeof(buf)), EAGAIN);
	FAILS(mtcp_recv(mctx, pfd[0], buf, sizeof(buf), MSG_PEEK), EINVAL);
	FAILS(mtcp_read(mctx, pfd[1], buf, sizeof(buf)), EBADF);
	FAILS(mtcp_write(mctx, pfd[0], "x", 1), EBADF);
	FAILS(mtcp_epoll_ctl(mctx, ep, MTCP_EPOLL_CTL_ADD, pfd[1], &ev), EPERM);
	ev.events = MTCP_EPOLLIN;
	ev.data.u64 = 0x1122334455667788ULL;
	CHECK(mtcp_epoll_ctl(mctx, ep, MTCP_EPOLL_CTL_ADD, pfd[0], &ev) == 0);
	struct writer_arg wa = {mctx, pfd[1], pfd[0], 0, 0, 0, 0};
	pthread_t th;
	CHECK(pthread_create(&th, NULL, writer, &wa) == 0);
	int n = mtcp_epoll_wait(mctx, ep, evs, 8, -1);
	pthread_join(th, NULL);
	CHECK(wa.rc == 4);
	CHECK(wa.foreign_errno == EPERM);
	CHECK(wa.foreign_write_errno == EPERM);
	CHECK(wa.foreign_close_errno == EPERM);
	CHECK(n == 1 && evs[0].events == MTCP_EPOLLIN && evs[0].data.u64 == 0x1122334455667788ULL);
	v = 0;
	CHECK(mtcp_socket_ioctl(mctx, pfd[0], FIONREAD, &v) == 0 && v == 4);
	CHECK(mtcp_read(mctx, pfd[0], buf, sizeof(buf)) == 4 && memcmp(buf, "ping", 4) == 0);
	CHECK(mtcp_epoll_wait(mctx, ep, evs, 8, 0) == 0);
	CHECK(mtcp_close(mctx, pfd[1]) == 0);
	FAILS(mtcp_write(mctx, pfd[1], "x", 1), EBADF);
	CHECK(mtcp_read(mctx, pfd[0], buf, sizeof(buf)) == 0);
	CHECK(mtcp_close(mctx, pfd[0]) == 0);

	/* ---- a registered signal interrupts a wait */
	NULL_WITH(mtcp_register_signal(SIGKILL, on_usr1), EINVAL);
	NULL_WITH(mtcp_register_signal(0, on_usr1), EINVAL);
	CHECK(mtcp_register_signal(SIGUSR1, on_usr1) == NULL);
	CHECK(mtcp_register_signal(SIGUSR1, on_usr1) == on_usr1);
	raise(SIGUSR1);
	CHECK(got_signal == SIGUSR1);
	FAILS(mtcp_epoll_wait(mctx, ep, evs, 8, -1), EINTR);
	CHECK(mtcp_epoll_wait(mctx, ep, evs, 8, 0) == 0);

	/* ---- the end: stale contexts are refused */
	mtcp_destroy_context(mctx);
	FAILS(mtcp_socket(mctx, AF_INET, SOCK_STREAM, 0), EINVAL);
	FAILS(mtcp_epoll_wait(mctx, ep, evs, 8, 0), EINVAL);
	mtcp_destroy();
	FAILS(mtcp_socket(mctx, AF_INET, SOCK_STREAM, 0), EINVAL);
	NULL_WITH(mtcp_create_context(0), EPERM);
	/* And it can start again. */
	CHECK(mtcp_init(argv[1]) == 0);
	mctx = mtcp_create_context(0);
	CHECK(mctx != NULL);
	CHECK(mtcp_socket(mctx, AF_INET, SOCK_STREAM, 0) == 0);
	mtcp_destroy();

	if (failed) {
		printf("errors: %d of %d checks failed\n", failed, checks);
		return 1;
	}
	printf("errors: %d checks passed\n", checks);
	return 0;
}
