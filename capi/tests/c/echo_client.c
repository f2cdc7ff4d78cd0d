/*
 * An echo client written against mTCP's API, in the shape of mTCP's
 * epwget: one context, non-blocking connects completed by MTCP_EPOLLOUT,
 * then each connection sends one message and reads it back; every byte is
 * compared with what was sent.
 *
 * usage: echo_client CONFIG SERVER-IP PORT CONNECTIONS SEED
 * Message sizes (1..32768) and bytes come from SEED. Prints
 * "echo_client: verified B bytes over N connections" and exits 0, or says
 * which connection and byte went wrong and exits 1. Gives up after 60 s
 * without progress.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <mtcp_api.h>
#include <mtcp_epoll.h>

#define MAX_MSG 32768

struct conn {
	int id;
	size_t size;
	size_t sent;
	size_t got;
	int connected;
	int finished;
	uint8_t *msg;
};

static uint64_t rng;

static uint64_t next(void)
{
	/* xorshift64* */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ULL;
}

static int fail(const char *what, int conn)
{
	printf("echo_client: connection %d: %s: %s\n", conn, what, strerror(errno));
	return 1;
}

static void want(mctx_t mctx, int ep, struct conn *c, int idx, uint32_t events)
{
	struct mtcp_epoll_event ev;
	ev.events = events;
	ev.data.u32 = (uint32_t)idx;
	mtcp_epoll_ctl(mctx, ep, MTCP_EPOLL_CTL_MOD, c->id, &ev);
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: %s CONFIG SERVER-IP PORT CONNECTIONS SEED\n", argv[0]);
		return 2;
	}
	int count = atoi(argv[4]);
	rng = strtoull(argv[5], NULL, 10) | 1;
	struct sockaddr_in server;
	memset(&server, 0, sizeof(server));
	server.sin_family = AF_INET;
	server.sin_port = htons(atoi(argv[3]));
	if (inet_pton(AF_INET, argv[2], &server.sin_addr) != 1) {
		fprintf(stderr, "echo_client: bad address %s\n", argv[2]);
		return 2;
	}
	struct mtcp_conf conf;
	mtcp_getconf(&conf);
	conf.num_cores = 1;
	mtcp_setconf(&conf);
	if (mtcp_init(argv[1]) < 0) {
		fprintf(stderr, "echo_client: mtcp_init failed\n");
		return 1;
	}
	mctx_t mctx = mtcp_create_context(0);
	if (!mctx)
		return fail("mtcp_create_context", -1);
	if (mtcp_init_rss(mctx, INADDR_ANY, 1, server.sin_addr.s_addr, server.sin_port) < 0)
		return fail("mtcp_init_rss", -1);
	int ep = mtcp_epoll_create(mctx, count + 1);
	if (ep < 0)
		return fail("epoll_create", -1);
	struct conn *conns = calloc((size_t)count, sizeof(*conns));
	struct mtcp_epoll_event *events = calloc((size_t)count, sizeof(*events));
	uint8_t *back = malloc(MAX_MSG);
	for (int i = 0; i < count; i++) {
		struct conn *c = &conns[i];
		c->size = 1 + next() % MAX_MSG;
		c->msg = malloc(c->size);
		for (size_t k = 0; k < c->size; k++)
			c->msg[k] = (uint8_t)next();
		c->id = mtcp_socket(mctx, AF_INET, SOCK_STREAM, 0);
		if (c->id < 0)
			return fail("socket", i);
		mtcp_setsock_nonblock(mctx, c->id);
		int one = 1;
		mtcp_setsockopt(mctx, c->id, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (mtcp_connect(mctx, c->id, (struct sockaddr *)&server, sizeof(server)) == 0 || errno != EINPROGRESS)
			return fail("connect did not say EINPROGRESS", i);
		struct mtcp_epoll_event ev;
		ev.events = MTCP_EPOLLOUT;
		ev.data.u32 = (uint32_t)i;
		if (mtcp_epoll_ctl(mctx, ep, MTCP_EPOLL_CTL_ADD, c->id, &ev) < 0)
			return fail("epoll_ctl ADD", i);
	}
	int finished = 0, idle = 0;
	long verified = 0;
	while (finished < count) {
		int n = mtcp_epoll_wait(mctx, ep, events, count, 1000);
		if (n < 0)
			return fail("epoll_wait", -1);
		if (n == 0) {
			if (++idle >= 60) {
				printf("echo_client: no progress for 60 s, %d of %d connections done\n", finished, count);
				return 1;
			}
			continue;
		}
		idle = 0;
		for (int e = 0; e < n; e++) {
			int i = (int)events[e].data.u32;
			struct conn *c = &conns[i];
			if (c->finished)
				continue;
			if (events[e].events & MTCP_EPOLLERR) {
				int err = 0;
				socklen_t len = sizeof(err);
				mtcp_getsockopt(mctx, c->id, SOL_SOCKET, SO_ERROR, &err, &len);
				errno = err;
				return fail("error event", i);
			}
			if (!c->connected && (events[e].events & MTCP_EPOLLOUT)) {
				int err = -1;
				socklen_t len = sizeof(err);
				if (mtcp_getsockopt(mctx, c->id, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
					errno = err;
					return fail("SO_ERROR after connect", i);
				}
				c->connected = 1;
			}
			while (c->connected && c->sent < c->size) {
				ssize_t w = mtcp_write(mctx, c->id, (const char *)c->msg + c->sent, c->size - c->sent);
				if (w < 0) {
					if (errno == EAGAIN)
						break;
					return fail("write", i);
				}
				c->sent += (size_t)w;
			}
			if (c->sent < c->size) {
				want(mctx, ep, c, i, MTCP_EPOLLOUT | MTCP_EPOLLIN);
				continue;
			}
			want(mctx, ep, c, i, MTCP_EPOLLIN);
			for (;;) {
				ssize_t r = mtcp_read(mctx, c->id, (char *)back, MAX_MSG);
				if (r < 0) {
					if (errno == EAGAIN)
						break;
					return fail("read", i);
				}
				if (r == 0) {
					errno = ECONNRESET;
					return fail("closed before the whole echo came back", i);
				}
				for (ssize_t k = 0; k < r; k++) {
					if (c->got + (size_t)k >= c->size || back[k] != c->msg[c->got + (size_t)k]) {
						printf("echo_client: connection %d: byte %zu of %zu differs\n", i,
						       c->got + (size_t)k, c->size);
						return 1;
					}
				}
				c->got += (size_t)r;
			}
			if (c->got == c->size) {
				c->finished = 1;
				finished++;
				verified += (long)c->size;
				mtcp_close(mctx, c->id);
			}
		}
	}
	mtcp_destroy_context(mctx);
	mtcp_destroy();
	printf("echo_client: verified %ld bytes over %d connections\n", verified, count);
	for (int i = 0; i < count; i++)
		free(conns[i].msg);
	free(conns);
	free(events);
	free(back);
	return 0;
}
