/*
 * sys_redis.c - Redis 7 Streams (hiredis) for bench/systems.c (the interface: systems.h).
 */
#include "systems.h"

#ifdef HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif
/* ======================= Redis Streams ====================================== */
#ifdef HAVE_HIREDIS

static char rd_host[256];
static int rd_port;

/* KEYS[1] the stream, KEYS[2] the global stream; ARGV[1] expected version
 * (-2 any, -1 no stream), ARGV[2] the stream name, then id, data, metadata
 * per event. The version is the stream's length - 1. */
static const char rd_script[] =
    "local cur = redis.call('XLEN', KEYS[1]) - 1\n"
    "local exp = tonumber(ARGV[1])\n"
    "if exp ~= -2 and exp ~= cur then return -100 - cur end\n"
    "for i = 3, #ARGV, 3 do\n"
    "  cur = cur + 1\n"
    "  redis.call('XADD', KEYS[1], '*', 'v', cur, 'id', ARGV[i], 'type', 'MoneyDeposited', 'data', ARGV[i+1], 'meta', ARGV[i+2])\n"
    "  redis.call('XADD', KEYS[2], '*', 's', ARGV[2], 'v', cur, 'id', ARGV[i], 'type', 'MoneyDeposited', 'data', ARGV[i+1], 'meta', ARGV[i+2])\n"
    "end\n"
    "return cur\n";
static char rd_sha[64];

static redisContext *rd_conn(void)
{
    redisContext *r = redisConnect(rd_host, rd_port);
    if (!r || r->err) die("redis connect", r ? r->errstr : "out of memory");
    return r;
}

static redisReply *rd_cmd(redisContext *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *x = redisvCommand(r, fmt, ap);
    va_end(ap);
    if (!x) die("redis", r->errstr);
    if (x->type == REDIS_REPLY_ERROR) die("redis", x->str);
    return x;
}

static void rd_setup(void)
{
    const char *colon = strrchr(target, ':');
    if (!colon) die("redis target", "host:port");
    snprintf(rd_host, sizeof rd_host, "%.*s", (int)(colon - target), target);
    rd_port = atoi(colon + 1);
    redisContext *r = rd_conn();
    freeReplyObject(rd_cmd(r, "FLUSHALL"));
    redisReply *x = rd_cmd(r, "SCRIPT LOAD %s", rd_script);
    snprintf(rd_sha, sizeof rd_sha, "%s", x->str);
    freeReplyObject(x);
    redisFree(r);
}

static void *rd_connect(void)
{
    return rd_conn();
}

static void rd_disconnect(void *c)
{
    redisFree(c);
}

static int rd_append(void *c, const char *stream, int64_t expected, const bev *e, size_t n, int64_t *last)
{
    size_t argc = 7 + 3 * n, k = 0;
    const char **argv = malloc(argc * sizeof *argv);
    size_t *lens = malloc(argc * sizeof *lens);
    char key[80], exp[24];
    snprintf(key, sizeof key, "s:%s", stream);
    snprintf(exp, sizeof exp, "%" PRId64, expected);
#define ARG(p, l) (argv[k] = (p), lens[k] = (l), k++)
    ARG("EVALSHA", 7);
    ARG(rd_sha, strlen(rd_sha));
    ARG("2", 1);
    ARG(key, strlen(key));
    ARG("all", 3);
    ARG(exp, strlen(exp));
    ARG(stream, strlen(stream));
    for (size_t i = 0; i < n; i++) {
        ARG(e[i].id, 36);
        ARG(e[i].data, e[i].dlen);
        ARG(e[i].meta, e[i].mlen);
    }
#undef ARG
    redisReply *x = redisCommandArgv(c, (int)k, argv, lens);
    free(argv);
    free(lens);
    if (!x) die("redis append", ((redisContext *)c)->errstr);
    if (x->type != REDIS_REPLY_INTEGER) die("redis append", x->type == REDIS_REPLY_ERROR ? x->str : "unexpected reply");
    long long v = x->integer;
    freeReplyObject(x);
    if (v <= -100) return 1;
    *last = v;
    return 0;
}

static int64_t rd_version(void *c, const char *stream)
{
    redisReply *x = rd_cmd(c, "XLEN s:%s", stream);
    int64_t v = (int64_t)x->integer - 1;
    freeReplyObject(x);
    return v;
}

/* The value of a field of a stream entry's field list. */
static const redisReply *rd_field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (!strcmp(fields->element[i]->str, name)) return fields->element[i + 1];
    return NULL;
}

static size_t rd_read(void *c, const char *stream, char *cursor, size_t max, uint64_t *bytes)
{
    char start[64];
    snprintf(start, sizeof start, "%s%s", cursor[0] ? "(" : "", cursor[0] ? cursor : "-");
    redisReply *x = stream ? rd_cmd(c, "XRANGE s:%s %s + COUNT %d", stream, start, (int)max)
                           : rd_cmd(c, "XRANGE all %s + COUNT %d", start, (int)max);
    size_t n = x->elements;
    for (size_t i = 0; i < n; i++) {
        const redisReply *ent = x->element[i], *f = ent->element[1];
        const redisReply *d = rd_field(f, "data"), *m = rd_field(f, "meta");
        *bytes += (d ? d->len : 0) + (m ? m->len : 0);
        if (i == n - 1) snprintf(cursor, 64, "%s", ent->element[0]->str);
    }
    freeReplyObject(x);
    return n;
}

static size_t rd_ids(void *c, const char *stream, char (*ids)[37], int64_t *versions, size_t cap)
{
    redisReply *x = rd_cmd(c, "XRANGE s:%s - +", stream);
    size_t n = 0;
    for (size_t i = 0; i < x->elements && n < cap; i++) {
        const redisReply *f = x->element[i]->element[1];
        const redisReply *id = rd_field(f, "id"), *v = rd_field(f, "v");
        snprintf(ids[n], 37, "%s", id ? id->str : "");
        versions[n++] = v ? strtoll(v->str, NULL, 10) : -1;
    }
    freeReplyObject(x);
    return n;
}

typedef struct rd_sub {
    redisContext *r;
    char last[64];
} rd_sub;

static void *rd_sub_open(void)
{
    rd_sub *u = calloc(1, sizeof *u);
    u->r = rd_conn();
    snprintf(u->last, sizeof u->last, "$");
    return u;
}

static int rd_sub_next(void *p, int timeout_ms, char id[37])
{
    rd_sub *u = p;
    redisReply *x = rd_cmd(u->r, "XREAD COUNT 1 BLOCK %d STREAMS all %s", timeout_ms, u->last);
    int got = 0;
    if (x->type == REDIS_REPLY_ARRAY && x->elements) {
        const redisReply *ent = x->element[0]->element[1]->element[0];
        snprintf(u->last, sizeof u->last, "%s", ent->element[0]->str);
        const redisReply *f = rd_field(ent->element[1], "id");
        snprintf(id, 37, "%s", f ? f->str : "");
        got = 1;
    }
    freeReplyObject(x);
    return got;
}

static void rd_sub_close(void *p)
{
    rd_sub *u = p;
    redisFree(u->r);
    free(u);
}


/* W8: a Redis consumer group on the global stream. A member reads up to 10
 * entries per XREADGROUP and acknowledges them with one XACK once it has
 * handled them (each XACK is a write: with appendfsync always, an fsync). */
typedef struct rd_member {
    redisContext *r;
    char name[32];
    redisReply *batch;
    size_t next;
    char ids[10][64];
    size_t n_acks;
} rd_member;

static void rd_group_create(void)
{
    redisContext *r = rd_conn();
    redisReply *x = redisCommand(r, "XGROUP CREATE all w8 $ MKSTREAM");
    if (x) freeReplyObject(x);
    redisFree(r);
}

static void *rd_member_open(int i)
{
    rd_member *m = calloc(1, sizeof *m);
    m->r = rd_conn();
    snprintf(m->name, sizeof m->name, "member-%d", i);
    return m;
}

static void rd_flush_acks(rd_member *m)
{
    if (!m->n_acks) return;
    const char *argv[13];
    size_t lens[13], k = 0;
    argv[k] = "XACK", lens[k++] = 4;
    argv[k] = "all", lens[k++] = 3;
    argv[k] = "w8", lens[k++] = 2;
    for (size_t i = 0; i < m->n_acks; i++) argv[k] = m->ids[i], lens[k++] = strlen(m->ids[i]);
    redisReply *x = redisCommandArgv(m->r, (int)k, argv, lens);
    if (x) freeReplyObject(x);
    m->n_acks = 0;
}

static int rd_member_next(void *p, int timeout_ms, char id[37])
{
    rd_member *m = p;
    const redisReply *entries = m->batch ? m->batch->element[0]->element[1] : NULL;
    if (!entries || m->next >= entries->elements) {
        rd_flush_acks(m);
        if (m->batch) freeReplyObject(m->batch);
        m->batch = NULL;
        m->next = 0;
        redisReply *x = rd_cmd(m->r, "XREADGROUP GROUP w8 %s COUNT 10 BLOCK %d STREAMS all >", m->name, timeout_ms);
        if (x->type != REDIS_REPLY_ARRAY || !x->elements) {
            freeReplyObject(x);
            return 0;
        }
        m->batch = x;
        entries = x->element[0]->element[1];
    }
    const redisReply *ent = entries->element[m->next++];
    snprintf(m->ids[m->n_acks++], 64, "%s", ent->element[0]->str);
    const redisReply *f = rd_field(ent->element[1], "id");
    snprintf(id, 37, "%s", f ? f->str : "");
    return 1;
}

static void rd_member_ack(void *p)
{
    (void)p; /* acknowledged in batches: rd_flush_acks */
}

static void rd_member_close(void *p)
{
    rd_member *m = p;
    rd_flush_acks(m);
    if (m->batch) freeReplyObject(m->batch);
    redisFree(m->r);
    free(m);
}


/* W11: the aggregate's stream, whole (XRANGE s:<stream> - +). */
static size_t rd_load(void *c, const char *stream, uint64_t *bytes)
{
    redisReply *x = rd_cmd(c, "XRANGE s:%s - +", stream);
    size_t n = x->elements;
    for (size_t i = 0; i < n; i++) {
        const redisReply *f = x->element[i]->element[1];
        const redisReply *d = rd_field(f, "data"), *m = rd_field(f, "meta");
        *bytes += (d ? d->len : 0) + (m ? m->len : 0);
    }
    freeReplyObject(x);
    return n;
}

/* W12: a connection per subscriber, each blocked in XREAD BLOCK 0 on the
 * global stream after the last entry it saw (the first: the stream's last
 * entry before the subscribers connect, so that none can miss an entry);
 * W12_THREADS threads each wait on an epoll set of their share, parse
 * what arrived with hiredis's reader and send the next XREAD. */
typedef struct rd_fsub {
    redisContext *r;
    char last[64];
} rd_fsub;

typedef struct rd_fan {
    rd_fsub *s;
    size_t n;
    int ep[W12_THREADS];
    pthread_t th[W12_THREADS];
    atomic_int stop;
} rd_fan;

typedef struct rd_fan_arg {
    rd_fan *f;
    int t;
} rd_fan_arg;

static void rd_fan_xread(rd_fsub *s)
{
    if (redisAppendCommand(s->r, "XREAD BLOCK 0 STREAMS all %s", s->last) != REDIS_OK) die("redis", s->r->errstr);
    for (int done = 0; !done;)
        if (redisBufferWrite(s->r, &done) != REDIS_OK) die("redis write", s->r->errstr);
}

static void *rd_fan_loop(void *p)
{
    rd_fan_arg *a = p;
    struct epoll_event ev[64];
    while (!atomic_load(&a->f->stop)) {
        int k = epoll_wait(a->f->ep[a->t], ev, 64, 100);
        for (int i = 0; i < k; i++) {
            rd_fsub *s = ev[i].data.ptr;
            if (redisBufferRead(s->r) != REDIS_OK) die("redis read", s->r->errstr);
            uint64_t t = now_ns();
            void *reply;
            while (redisReaderGetReply(s->r->reader, &reply) == REDIS_OK && reply) {
                redisReply *x = reply;
                if (x->type == REDIS_REPLY_ARRAY && x->elements) {
                    const redisReply *entries = x->element[0]->element[1];
                    for (size_t e = 0; e < entries->elements; e++) {
                        const redisReply *ent = entries->element[e], *id = rd_field(ent->element[1], "id");
                        if (id) w12_got(id->str, t);
                        if (e == entries->elements - 1) snprintf(s->last, sizeof s->last, "%s", ent->element[0]->str);
                    }
                }
                freeReplyObject(x);
                rd_fan_xread(s);
            }
        }
    }
    free(a);
    return NULL;
}

static void *rd_fan_open(size_t n)
{
    rd_fan *f = calloc(1, sizeof *f);
    f->n = n;
    f->s = calloc(n, sizeof *f->s);
    redisContext *r = rd_conn();
    redisReply *x = rd_cmd(r, "XREVRANGE all + - COUNT 1");
    char last[64] = "0-0";
    if (x->elements) snprintf(last, sizeof last, "%s", x->element[0]->element[0]->str);
    freeReplyObject(x);
    redisFree(r);
    for (int t = 0; t < W12_THREADS; t++) f->ep[t] = epoll_create1(EPOLL_CLOEXEC);
    for (size_t j = 0; j < n; j++) {
        f->s[j].r = rd_conn();
        snprintf(f->s[j].last, sizeof f->s[j].last, "%s", last);
        rd_fan_xread(&f->s[j]);
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = &f->s[j]};
        if (epoll_ctl(f->ep[j % W12_THREADS], EPOLL_CTL_ADD, f->s[j].r->fd, &e)) die("epoll", "add");
    }
    for (int t = 0; t < W12_THREADS; t++) {
        rd_fan_arg *a = malloc(sizeof *a);
        *a = (rd_fan_arg){f, t};
        pthread_create(&f->th[t], NULL, rd_fan_loop, a);
    }
    return f;
}

static void rd_fan_close(void *p)
{
    rd_fan *f = p;
    atomic_store(&f->stop, 1);
    for (int t = 0; t < W12_THREADS; t++) {
        pthread_join(f->th[t], NULL);
        close(f->ep[t]);
    }
    for (size_t j = 0; j < f->n; j++) redisFree(f->s[j].r);
    free(f->s);
    free(f);
}

const backend redis_backend = {"Redis",        rd_setup,        rd_connect,     rd_disconnect,  rd_append,
                                      rd_version,     rd_read,         rd_ids,         rd_sub_open,    rd_sub_next,
                                      rd_sub_close,   rd_group_create, rd_member_open, rd_member_next, rd_member_ack,
                                      rd_member_close, rd_load, "XRANGE s:<stream> - +",
                                      rd_fan_open, rd_fan_close, "a connection each, XREAD BLOCK, served by 2 epoll threads"};
#endif
