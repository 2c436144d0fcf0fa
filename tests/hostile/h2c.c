/*
 * h2c.c - the tools of h2c.h: starting and watching factumd, raw
 * connections, and an HTTP/2 client over nghttp2 that sends whatever a
 * hostile test wants.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "h2c.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the server ------------------------------------------------------ */

int srv_start(srv *s, const char *path, const char *base, const char *const *args)
{
    static int n_started;
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s/hostile-%d-%d", base, (int)getpid(), n_started++);
    snprintf(s->log, sizeof s->log, "%s.log", s->dir);
    mkdir(base, 0755);
    const char *argv[40];
    int n = 0;
    int tls = 0; /* certificates given: TLS, else --insecure */
    for (int i = 0; args && args[i]; i++)
        if (!strcmp(args[i], "--certificate-file")) tls = 1;
    argv[n++] = path;
    if (!tls) argv[n++] = "--insecure";
    argv[n++] = "--db";
    argv[n++] = s->dir;
    argv[n++] = "--node-ip";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--node-port";
    argv[n++] = "0";
    for (int i = 0; args && args[i] && n < 38; i++) argv[n++] = args[i];
    argv[n] = NULL;
    s->pid = fork();
    if (s->pid < 0) return -1;
    if (s->pid == 0) {
        int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(path, (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 300; i++) {
        FILE *f = fopen(s->log, "r");
        if (f) {
            char line[1024];
            while (fgets(line, sizeof line, f)) {
                char *p = strstr(line, "listening on 127.0.0.1:");
                if (p) s->port = atoi(p + strlen("listening on 127.0.0.1:"));
            }
            fclose(f);
        }
        if (s->port) return 0;
        if (!srv_alive(s)) return -1;
        usleep(20000);
    }
    return -1;
}

int srv_alive(const srv *s)
{
    return s->pid > 0 && kill(s->pid, 0) == 0 && waitpid(s->pid, NULL, WNOHANG) == 0;
}

int srv_stop(srv *s)
{
    if (s->pid <= 0) return -1;
    kill(s->pid, SIGTERM);
    int st;
    if (waitpid(s->pid, &st, 0) < 0) return -1;
    s->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

long srv_rss_anon_kib(const srv *s)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)s->pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "RssAnon:", 8)) v = strtol(line + 8, NULL, 10);
    fclose(f);
    return v;
}

/* One HTTP/1.1 GET with a blocking socket; the response in out. */
static int http_get(int port, const char *path, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, out + got, cap - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
        if (got == cap - 1) break;
    }
    out[got] = 0;
    close(fd);
    return got ? 0 : -1;
}

int srv_http_status(const srv *s, const char *path)
{
    char buf[4096];
    if (http_get(s->port, path, buf, sizeof buf)) return -1;
    if (strncmp(buf, "HTTP/1.1 ", 9)) return -1;
    return atoi(buf + 9);
}

double srv_metric(const srv *s, const char *name)
{
    size_t cap = 1u << 20;
    char *buf = malloc(cap);
    if (!buf) return -1;
    double v = -1;
    if (http_get(s->port, "/metrics", buf, cap) == 0) {
        size_t nl = strlen(name);
        for (char *p = buf; (p = strstr(p, name)); p += nl)
            if ((p == buf || p[-1] == '\n') && (p[nl] == ' ' || p[nl] == '{')) {
                char *sp = strchr(p, ' ');
                if (sp) v = strtod(sp + 1, NULL);
                break;
            }
    }
    free(buf);
    return v;
}

/* ---- raw connections ------------------------------------------------- */

int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

int tcp_closed(int fd)
{
    char buf[4096];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r == 0) return 1;
        if (r < 0) return errno == EAGAIN || errno == EINTR ? 0 : 1;
    }
}

/* ---- HTTP/2 client ------------------------------------------------------ */

struct h2c {
    int fd;
    nghttp2_session *s;
    int dead;
    uint8_t *pending; /* bytes mem_send gave that the socket did not take */
    size_t pending_len, pending_off;
};

static ssize_t body_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *source, void *user_data)
{
    (void)session;
    (void)stream_id;
    (void)user_data;
    h2c_stream *st = source->ptr;
    ssize_t n = st->produce(st->ctx, buf, length);
    if (n < 0) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return 0;
    }
    if (n == 0) return NGHTTP2_ERR_DEFERRED;
    return n;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data)
{
    (void)flags;
    (void)user_data;
    h2c_stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!st) return 0;
    if (namelen == 11 && !memcmp(name, "grpc-status", 11)) st->grpc_status = atoi((const char *)value);
    if (namelen == 12 && !memcmp(name, "grpc-message", 12)) {
        size_t n = valuelen < sizeof st->message - 1 ? valuelen : sizeof st->message - 1;
        memcpy(st->message, value, n);
        st->message[n] = 0;
    }
    return 0;
}

static int on_data(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
                   void *user_data)
{
    (void)flags;
    (void)data;
    (void)user_data;
    h2c_stream *st = nghttp2_session_get_stream_user_data(session, stream_id);
    if (st) st->data_in += len;
    return 0;
}

static int on_close(nghttp2_session *session, int32_t stream_id, uint32_t code, void *user_data)
{
    (void)user_data;
    h2c_stream *st = nghttp2_session_get_stream_user_data(session, stream_id);
    if (st) {
        st->closed = 1;
        if (code) {
            st->reset = 1;
            st->reset_code = code;
        }
    }
    return 0;
}

static int on_frame(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    (void)session;
    h2c *h = user_data;
    if (frame->hd.type == NGHTTP2_GOAWAY) h->dead = 1;
    return 0;
}

h2c *h2c_open(int port)
{
    h2c *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->fd = tcp_connect(port);
    nghttp2_session_callbacks *cb;
    if (h->fd < 0 || nghttp2_session_callbacks_new(&cb)) {
        if (h->fd >= 0) close(h->fd);
        free(h);
        return NULL;
    }
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
    int rc = nghttp2_session_client_new(&h->s, cb, h);
    nghttp2_session_callbacks_del(cb);
    if (rc) {
        close(h->fd);
        free(h);
        return NULL;
    }
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000}};
    nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, 1);
    return h;
}

void h2c_close(h2c *h)
{
    if (!h) return;
    nghttp2_session_del(h->s);
    close(h->fd);
    free(h->pending);
    free(h);
}

int h2c_fd(const h2c *h)
{
    return h->fd;
}

int h2c_ok(const h2c *h)
{
    return !h->dead;
}

int h2c_call(h2c *h, const char *path, h2c_stream *st)
{
    st->closed = st->reset = 0;
    st->grpc_status = -1;
    st->message[0] = 0;
    nghttp2_nv nv[] = {
        {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
        {(uint8_t *)":authority", (uint8_t *)"localhost", 10, 9, 0},
        {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0},
        {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, 0},
        {(uint8_t *)"te", (uint8_t *)"trailers", 2, 8, 0},
    };
    nghttp2_data_provider prd = {{.ptr = st}, body_read};
    int32_t id = nghttp2_submit_request(h->s, NULL, nv, sizeof nv / sizeof *nv, &prd, st);
    if (id < 0) return -1;
    st->id = id;
    return 0;
}

void h2c_resume(h2c *h, h2c_stream *st)
{
    if (!st->closed) nghttp2_session_resume_data(h->s, st->id);
}

int h2c_pump(h2c *h, int ms, int read_too)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    do {
        if (h->dead) return -1;
        /* Output: what is left over first, then what nghttp2 has. */
        for (;;) {
            if (h->pending_off == h->pending_len) {
                const uint8_t *data;
                ssize_t n = nghttp2_session_mem_send(h->s, &data);
                if (n < 0) {
                    h->dead = 1;
                    return -1;
                }
                if (n == 0) break;
                uint8_t *p = realloc(h->pending, (size_t)n);
                if (!p) return -1;
                memcpy(p, data, (size_t)n);
                h->pending = p;
                h->pending_len = (size_t)n;
                h->pending_off = 0;
            }
            ssize_t w = write(h->fd, h->pending + h->pending_off, h->pending_len - h->pending_off);
            if (w < 0) {
                if (errno == EAGAIN || errno == EINTR) break;
                h->dead = 1;
                return -1;
            }
            h->pending_off += (size_t)w;
        }
        if (read_too) {
            uint8_t buf[65536];
            for (;;) {
                ssize_t r = read(h->fd, buf, sizeof buf);
                if (r == 0) {
                    h->dead = 1;
                    return -1;
                }
                if (r < 0) {
                    if (errno == EAGAIN || errno == EINTR) break;
                    h->dead = 1;
                    return -1;
                }
                if (nghttp2_session_mem_recv(h->s, buf, (size_t)r) < 0) {
                    h->dead = 1;
                    return -1;
                }
            }
        }
        if (!ms) break;
        struct pollfd pf = {h->fd, (short)((read_too ? POLLIN : 0) |
                                           (h->pending_off < h->pending_len || nghttp2_session_want_write(h->s)
                                                ? POLLOUT
                                                : 0)),
                            0};
        poll(&pf, 1, 5);
    } while (now_ms() < end);
    return h->dead ? -1 : 0;
}

/* ---- building gRPC messages ------------------------------------------------ */

void wb_put(wbuf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n) cap *= 2;
        uint8_t *d = realloc(b->data, cap);
        if (!d) abort();
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
}

void wb_varint(wbuf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    wb_put(b, tmp, n);
}

void wb_wrap(wbuf *b, unsigned field, const wbuf *inner)
{
    wb_varint(b, (uint64_t)field << 3 | 2);
    wb_varint(b, inner->len);
    wb_put(b, inner->data, inner->len);
}

void wb_string(wbuf *b, unsigned field, const char *s)
{
    wb_varint(b, (uint64_t)field << 3 | 2);
    wb_varint(b, strlen(s));
    wb_put(b, s, strlen(s));
}

void wb_grpc(wbuf *b, const wbuf *msg)
{
    uint8_t pre[5] = {0, (uint8_t)(msg->len >> 24), (uint8_t)(msg->len >> 16), (uint8_t)(msg->len >> 8),
                      (uint8_t)msg->len};
    wb_put(b, pre, 5);
    wb_put(b, msg->data, msg->len);
}

void wb_free(wbuf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

ssize_t h2c_bytes_produce(void *ctx, uint8_t *buf, size_t len)
{
    h2c_bytes *s = ctx;
    if (s->off == s->b.len) return s->end ? -1 : 0;
    size_t n = s->b.len - s->off < len ? s->b.len - s->off : len;
    memcpy(buf, s->b.data + s->off, n);
    s->off += n;
    return (ssize_t)n;
}
