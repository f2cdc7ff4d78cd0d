/*
 * An epoll echo server written against mTCP's API, in the shape of mTCP's
 * own epserver: mtcp_init, one pthread per core, each with its own
 * context, listener and epoll; non-blocking sockets; Ctrl-C (SIGINT, via
 * mtcp_register_signal) stops every thread.
 *
 * usage: echo_server CONFIG PORT
 * At the end it prints "echo_server: accepted N connections, echoed B
 * bytes" and exits 0.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <mtcp_api.h>
#include <mtcp_epoll.h>

#define MAX_EVENTS 256
#define BUF_SIZE 16384

static volatile sig_atomic_t done;
static int port;

struct conn {
	char buf[BUF_SIZE]; /* received and not yet echoed */
	size_t len;
	size_t off;
	int open;
};

struct core {
	int cpu;
	pthread_t thread;
	long accepted;
	long echoed;
	int ok;
};

static void on_sigint(int sig)
{
	(void)sig;
	done = 1;
}

static void die(const char *what)
{
	fprintf(stderr, "echo_server: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void set_events(mctx_t mctx, int ep, int id, uint32_t events)
{
	struct mtcp_epoll_event ev;
	ev.events = events;
	ev.data.sockid = id;
	if (mtcp_epoll_ctl(mctx, ep, MTCP_EPOLL_CTL_MOD, id, &ev) < 0)
		die("epoll_ctl MOD");
}

static void close_conn(mctx_t mctx, struct conn *conns, int id)
{
	mtcp_close(mctx, id);
	conns[id].open = 0;
}

/* Writes what is buffered; 1 when all of it went out. */
static int flush(mctx_t mctx, struct core *core, struct conn *c, int id)
{
	while (c->off < c->len) {
		ssize_t n = mtcp_write(mctx, id, c->buf + c->off, c->len - c->off);
		if (n < 0)
			return errno == EAGAIN ? 0 : -1;
		c->off += (size_t)n;
		core->echoed += n;
	}
	c->off = c->len = 0;
	return 1;
}

static void *serve(void *arg)
{
	struct core *core = arg;
	struct mtcp_conf conf;
	mtcp_getconf(&conf);
	int max_ids = conf.max_concurrency * 3;
	mctx_t mctx = mtcp_create_context(core->cpu);
	if (!mctx)
		die("mtcp_create_context");
	struct conn *conns = calloc((size_t)max_ids, sizeof(*conns));
	struct mtcp_epoll_event *events = calloc(MAX_EVENTS, sizeof(*events));
	if (!conns || !events)
		die("calloc");
	int ep = mtcp_epoll_create(mctx, MAX_EVENTS);
	if (ep < 0)
		die("epoll_create");
	int l = mtcp_socket(mctx, AF_INET, SOCK_STREAM, 0);
	if (l < 0)
		die("socket");
	if (mtcp_setsock_nonblock(mctx, l) < 0)
		die("setsock_nonblock");
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = INADDR_ANY;
	a.sin_port = htons(port);
	if (mtcp_bind(mctx, l, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("bind");
	if (mtcp_listen(mctx, l, 4096) < 0)
		die("listen");
	struct mtcp_epoll_event ev;
	ev.events = MTCP_EPOLLIN;
	ev.data.sockid = l;
	if (mtcp_epoll_ctl(mctx, ep, MTCP_EPOLL_CTL_ADD, l, &ev) < 0)
		die("epoll_ctl ADD listener");

	while (!done) {
		int n = mtcp_epoll_wait(mctx, ep, events, MAX_EVENTS, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		for (int i = 0; i < n; i++) {
			int id = events[i].data.sockid;
			uint32_t e = events[i].events;
			if (id == l) {
				for (;;) {
					int c = mtcp_accept(mctx, l, NULL, NULL);
					if (c < 0) {
						if (errno != EAGAIN)
							die("accept");
						break;
					}
					if (c >= max_ids) {
						mtcp_close(mctx, c);
						continue;
					}
					core->accepted++;
					mtcp_setsock_nonblock(mctx, c);
					conns[c].open = 1;
					conns[c].len = conns[c].off = 0;
					ev.events = MTCP_EPOLLIN;
					ev.data.sockid = c;
					if (mtcp_epoll_ctl(mctx, ep, MTCP_EPOLL_CTL_ADD, c, &ev) < 0)
						die("epoll_ctl ADD");
				}
				continue;
			}
			struct conn *c = &conns[id];
			if (!c->open)
				continue;
			if (e & MTCP_EPOLLERR) {
				close_conn(mctx, conns, id);
				continue;
			}
			if (c->len > 0) {
				/* Waiting for room: echo the rest, then read again. */
				int f = flush(mctx, core, c, id);
				if (f < 0)
					close_conn(mctx, conns, id);
				else if (f > 0)
					set_events(mctx, ep, id, MTCP_EPOLLIN);
				continue;
			}
			ssize_t r = mtcp_read(mctx, id, c->buf, sizeof(c->buf));
			if (r == 0 || (r < 0 && errno != EAGAIN)) {
				close_conn(mctx, conns, id);
				continue;
			}
			if (r < 0)
				continue;
			c->len = (size_t)r;
			c->off = 0;
			int f = flush(mctx, core, c, id);
			if (f < 0)
				close_conn(mctx, conns, id);
			else if (f == 0)
				set_events(mctx, ep, id, MTCP_EPOLLOUT);
		}
	}
	mtcp_close(mctx, l);
	mtcp_destroy_context(mctx);
	free(conns);
	free(events);
	core->ok = 1;
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s CONFIG PORT\n", argv[0]);
		return 2;
	}
	port = atoi(argv[2]);
	if (mtcp_init(argv[1]) < 0) {
		fprintf(stderr, "echo_server: mtcp_init failed\n");
		return 1;
	}
	mtcp_register_signal(SIGINT, on_sigint);
	struct mtcp_conf conf;
	mtcp_getconf(&conf);
	int cores = conf.num_cores;
	struct core *all = calloc((size_t)cores, sizeof(*all));
	for (int i = 0; i < cores; i++) {
		all[i].cpu = i;
		if (pthread_create(&all[i].thread, NULL, serve, &all[i]) != 0)
			die("pthread_create");
	}
	printf("echo_server: listening on port %d with %d cores\n", port, cores);
	fflush(stdout);
	long accepted = 0, echoed = 0;
	int ok = 1;
	for (int i = 0; i < cores; i++) {
		pthread_join(all[i].thread, NULL);
		accepted += all[i].accepted;
		echoed += all[i].echoed;
		ok &= all[i].ok;
	}
	mtcp_destroy();
	printf("echo_server: accepted %ld connections, echoed %ld bytes\n", accepted, echoed);
	free(all);
	return ok ? 0 : 1;
}
