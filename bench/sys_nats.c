/*
 * sys_nats.c - NATS JetStream (libnats) for bench/systems.c (the interface: systems.h).
 */
#include "systems.h"

#ifdef HAVE_NATS
#include <nats/nats.h>
#endif
/* ======================= NATS JetStream ====================================== */
#ifdef HAVE_NATS

/* One JetStream stream EVENTS over subjects ev.<stream>; the version is a
 * header of each message; the concurrency check is JetStream's
 * expected-last-subject-sequence (or expected-no-message). The stream
 * fsyncs periodically (sync_interval), not before each acknowledgement. */
typedef struct nk {
    char stream[64];
    int64_t version;
    uint64_t seq;
} nk;

typedef struct nt {
    natsConnection *nc;
    jsCtx *js;
    nk *known; /* last (version, subject sequence) per stream this connection saw */
    size_t known_cap;
    natsSubscription *rsub; /* the reader's pull consumer */
    char rsubject[80];
    uint64_t rnext;
    int rend;
} nt;

static char nats_url[300];

static void nchk(natsStatus s, const char *what)
{
    if (s != NATS_OK) die(what, natsStatus_GetText(s));
}

static nt *nt_new(void)
{
    nt *n = calloc(1, sizeof *n);
    nchk(natsConnection_ConnectTo(&n->nc, nats_url), "nats connect");
    nchk(natsConnection_JetStream(&n->js, n->nc, NULL), "nats jetstream");
    n->known_cap = 16384;
    n->known = calloc(n->known_cap, sizeof *n->known);
    return n;
}

static void nt_setup(void)
{
    snprintf(nats_url, sizeof nats_url, "nats://%s", target);
    nt *n = nt_new();
    js_DeleteStream(n->js, "EVENTS", NULL, NULL);
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[] = {"ev.>"};
    sc.Name = "EVENTS";
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.AllowDirect = true; /* W11: direct gets */
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    nchk(js_AddStream(&si, n->js, &sc, NULL, &jerr), "nats add stream");
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(n->js);
    natsConnection_Destroy(n->nc);
    free(n->known);
    free(n);
}

static void *nt_connect(void)
{
    return nt_new();
}

static void nt_reader_close(nt *n)
{
    if (n->rsub) {
        natsSubscription_Unsubscribe(n->rsub);
        natsSubscription_Destroy(n->rsub);
    }
    n->rsub = NULL;
}

static void nt_disconnect(void *c)
{
    nt *n = c;
    nt_reader_close(n);
    jsCtx_Destroy(n->js);
    natsConnection_Destroy(n->nc);
    free(n->known);
    free(n);
}

static nk *nt_known(nt *n, const char *stream)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = stream; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
    nk *k = &n->known[h % n->known_cap];
    if (strcmp(k->stream, stream)) {
        snprintf(k->stream, sizeof k->stream, "%s", stream);
        k->version = -3; /* unknown */
    }
    return k;
}

static int64_t nt_version(void *c, const char *stream)
{
    nt *n = c;
    char subj[80];
    snprintf(subj, sizeof subj, "ev.%s", stream);
    natsMsg *m = NULL;
    nk *k = nt_known(n, stream);
    if (js_GetLastMsg(&m, n->js, "EVENTS", subj, NULL, NULL) != NATS_OK) {
        k->version = NO_STREAM;
        k->seq = 0;
        return NO_STREAM;
    }
    const char *v = NULL;
    natsMsgHeader_Get(m, "v", &v);
    k->version = v ? strtoll(v, NULL, 10) : NO_STREAM;
    k->seq = natsMsg_GetSequence(m);
    natsMsg_Destroy(m);
    return k->version;
}

static natsMsg *nt_msg(const char *subj, const bev *e, int64_t version)
{
    natsMsg *m;
    char v[24];
    nchk(natsMsg_Create(&m, subj, NULL, e->data, (int)e->dlen), "nats msg");
    snprintf(v, sizeof v, "%" PRId64, version);
    natsMsgHeader_Set(m, "v", v);
    natsMsgHeader_Set(m, "id", e->id);
    natsMsgHeader_Set(m, "type", "MoneyDeposited");
    char meta[170];
    snprintf(meta, sizeof meta, "%.*s", (int)e->mlen, e->meta);
    natsMsgHeader_Set(m, "m", meta);
    return m;
}

static int nt_append(void *c, const char *stream, int64_t expected, const bev *e, size_t cnt, int64_t *last)
{
    nt *n = c;
    char subj[80];
    snprintf(subj, sizeof subj, "ev.%s", stream);
    nk *k = nt_known(n, stream);
    /* No stream: ExpectNoMessage needs no sequence; a version: the sequence of
     * its message (known from our last append, else read). */
    if (expected >= 0 && k->version != expected) nt_version(n, stream);
    if (expected >= 0 && k->version != expected) return 1;
    int64_t cur = expected == ANY ? (k->version == -3 ? nt_version(n, stream) : k->version) : expected;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    if (expected == NO_STREAM) po.ExpectNoMessage = true;
    else if (expected != ANY) po.ExpectLastSubjectSeq = k->seq;
    /* The first message carries the check; the rest of a batch follow it
     * (JetStream has no atomic multi-message publish). */
    natsMsg *m = nt_msg(subj, &e[0], cur + 1);
    jsPubAck *ack = NULL;
    jsErrCode jerr = 0;
    natsStatus st = js_PublishMsg(&ack, n->js, m, &po, &jerr);
    natsMsg_Destroy(m);
    if (st != NATS_OK) {
        if (jerr == JSStreamWrongLastSequenceErr) {
            k->version = -3;
            return 1;
        }
        die("nats publish", natsStatus_GetText(st));
    }
    uint64_t seq = ack->Sequence;
    jsPubAck_Destroy(ack);
    for (size_t i = 1; i < cnt; i++) {
        m = nt_msg(subj, &e[i], cur + 1 + (int64_t)i);
        nchk(js_PublishMsgAsync(n->js, &m, NULL), "nats publish async");
    }
    if (cnt > 1) {
        jsPubOptions wait;
        jsPubOptions_Init(&wait);
        wait.MaxWait = 30000;
        nchk(js_PublishAsyncComplete(n->js, &wait), "nats publish complete");
        seq = 0; /* unknown: re-read when the stream is next checked */
    }
    k->version = cur + (int64_t)cnt;
    k->seq = seq;
    if (!seq) k->version = -3;
    *last = cur + (int64_t)cnt;
    return 0;
}

static size_t nt_read(void *c, const char *stream, char *cursor, size_t max, uint64_t *bytes)
{
    nt *n = c;
    char subj[80];
    snprintf(subj, sizeof subj, "%s%s", stream ? "ev." : "ev.>", stream ? stream : "");
    uint64_t start = cursor[0] ? strtoull(cursor, NULL, 10) : 1;
    if (!n->rsub || strcmp(n->rsubject, subj) || n->rnext != start) {
        nt_reader_close(n);
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Config.DeliverPolicy = js_DeliverByStartSequence;
        so.Config.OptStartSeq = start;
        so.Config.AckPolicy = js_AckNone;
        char durable[48];
        snprintf(durable, sizeof durable, "r%lx%x", (unsigned long)now_ns(), (unsigned)rand());
        nchk(js_PullSubscribe(&n->rsub, n->js, subj, durable, NULL, &so, NULL), "nats pull subscribe");
        snprintf(n->rsubject, sizeof n->rsubject, "%s", subj);
        n->rend = 0;
    }
    n->rnext = start;
    if (n->rend) return 0;
    natsMsgList list = {0};
    natsStatus st = natsSubscription_Fetch(&list, n->rsub, (int)max, 2000, NULL);
    if (st == NATS_TIMEOUT) {
        n->rend = 1;
        return 0;
    }
    nchk(st, "nats fetch");
    size_t got = 0;
    for (int i = 0; i < list.Count; i++) {
        natsMsg *m = list.Msgs[i];
        const char *meta = NULL;
        natsMsgHeader_Get(m, "m", &meta);
        *bytes += (uint64_t)natsMsg_GetDataLength(m) + (meta ? strlen(meta) : 0);
        jsMsgMetaData *md = NULL;
        if (natsMsg_GetMetaData(&md, m) == NATS_OK) {
            n->rnext = md->Sequence.Stream + 1;
            if (md->NumPending == 0) n->rend = 1;
            jsMsgMetaData_Destroy(md);
        }
        got++;
    }
    natsMsgList_Destroy(&list);
    snprintf(cursor, 32, "%" PRIu64, n->rnext);
    return got;
}

static size_t nt_ids(void *c, const char *stream, char (*ids)[37], int64_t *versions, size_t cap)
{
    nt *n = c;
    char subj[80];
    snprintf(subj, sizeof subj, "ev.%s", stream);
    nt_reader_close(n);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Config.AckPolicy = js_AckNone;
    char durable[48];
    snprintf(durable, sizeof durable, "i%lx%x", (unsigned long)now_ns(), (unsigned)rand());
    natsSubscription *sub;
    nchk(js_PullSubscribe(&sub, n->js, subj, durable, NULL, &so, NULL), "nats pull subscribe");
    size_t k = 0;
    for (int done = 0; !done && k < cap;) {
        natsMsgList list = {0};
        if (natsSubscription_Fetch(&list, sub, 1000, 1000, NULL) != NATS_OK) break;
        for (int i = 0; i < list.Count && k < cap; i++) {
            const char *id = NULL, *v = NULL;
            natsMsgHeader_Get(list.Msgs[i], "id", &id);
            natsMsgHeader_Get(list.Msgs[i], "v", &v);
            snprintf(ids[k], 37, "%s", id ? id : "");
            versions[k++] = v ? strtoll(v, NULL, 10) : -1;
            jsMsgMetaData *md = NULL;
            if (natsMsg_GetMetaData(&md, list.Msgs[i]) == NATS_OK) {
                if (md->NumPending == 0) done = 1;
                jsMsgMetaData_Destroy(md);
            }
        }
        natsMsgList_Destroy(&list);
    }
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    return k;
}

typedef struct nt_sub {
    nt *n;
    natsSubscription *sub;
} nt_sub;

static void *nt_sub_open(void)
{
    nt_sub *u = calloc(1, sizeof *u);
    u->n = nt_new();
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Config.DeliverPolicy = js_DeliverNew;
    so.Config.AckPolicy = js_AckNone;
    nchk(js_SubscribeSync(&u->sub, u->n->js, "ev.>", NULL, &so, NULL), "nats subscribe");
    return u;
}

static int nt_sub_next(void *p, int timeout_ms, char id[37])
{
    nt_sub *u = p;
    natsMsg *m = NULL;
    if (natsSubscription_NextMsg(&m, u->sub, timeout_ms) != NATS_OK) return 0;
    const char *v = NULL;
    natsMsgHeader_Get(m, "id", &v);
    snprintf(id, 37, "%s", v ? v : "");
    natsMsg_Destroy(m);
    return 1;
}

static void nt_sub_close(void *p)
{
    nt_sub *u = p;
    natsSubscription_Unsubscribe(u->sub);
    natsSubscription_Destroy(u->sub);
    nt_disconnect(u->n);
    free(u);
}


/* W8: one durable pull consumer (explicit acks) shared by the members. */
typedef struct nt_member {
    nt *n;
    natsSubscription *sub;
    natsMsgList list; /* up to 10 fetched at a time */
    int next;
    natsMsg *pending;
} nt_member;

static void nt_group_create(void)
{
    nt *n = nt_new();
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = "w8";
    cc.DeliverPolicy = js_DeliverNew;
    cc.AckPolicy = js_AckExplicit;
    cc.FilterSubject = "ev.>";
    cc.MaxAckPending = 10000;
    jsConsumerInfo *ci = NULL;
    nchk(js_AddConsumer(&ci, n->js, "EVENTS", &cc, NULL, NULL), "nats add consumer");
    jsConsumerInfo_Destroy(ci);
    nt_disconnect(n);
}

static void *nt_member_open(int i)
{
    (void)i;
    nt_member *m = calloc(1, sizeof *m);
    m->n = nt_new();
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = "EVENTS";
    so.Consumer = "w8";
    nchk(js_PullSubscribe(&m->sub, m->n->js, "ev.>", "w8", NULL, &so, NULL), "nats bind consumer");
    return m;
}

static int nt_member_next(void *p, int timeout_ms, char id[37])
{
    nt_member *m = p;
    if (m->next >= m->list.Count) {
        natsMsgList_Destroy(&m->list);
        memset(&m->list, 0, sizeof m->list);
        m->next = 0;
        if (natsSubscription_Fetch(&m->list, m->sub, 10, timeout_ms, NULL) != NATS_OK || !m->list.Count) return 0;
    }
    m->pending = m->list.Msgs[m->next++];
    const char *v = NULL;
    natsMsgHeader_Get(m->pending, "id", &v);
    snprintf(id, 37, "%s", v ? v : "");
    return 1;
}

static void nt_member_ack(void *p)
{
    nt_member *m = p;
    natsMsg_Ack(m->pending, NULL); /* each message acknowledged (no fsync: periodic) */
}

static void nt_member_close(void *p)
{
    nt_member *m = p;
    natsMsgList_Destroy(&m->list);
    natsSubscription_Destroy(m->sub);
    nt_disconnect(m->n);
    free(m);
}


/* W11: JetStream keeps a subject's messages in the stream. The cheapest
 * way to read them here is the direct get (the stream allows it:
 * allow_direct), following the subject from sequence to sequence
 * (next_by_subj): one request per message and one that finds no more, 11
 * for a 10-event stream. NATS 2.9 has no batched direct get; an ephemeral
 * pull consumer on the subject (create, one fetch, delete: three requests,
 * but consumer state on the server) measured ~10% slower on this machine. */
static size_t nt_load(void *c, const char *stream, uint64_t *bytes)
{
    nt *n = c;
    char subj[80];
    snprintf(subj, sizeof subj, "ev.%s", stream);
    size_t k = 0;
    uint64_t seq = 1;
    for (;;) {
        jsDirectGetMsgOptions o;
        jsDirectGetMsgOptions_Init(&o);
        o.Sequence = seq;
        o.NextBySubject = subj;
        natsMsg *m = NULL;
        natsStatus st = js_DirectGetMsg(&m, n->js, "EVENTS", NULL, &o);
        if (st == NATS_NOT_FOUND) break;
        nchk(st, "nats direct get");
        const char *meta = NULL, *seqh = NULL;
        natsMsgHeader_Get(m, "m", &meta);
        natsMsgHeader_Get(m, "Nats-Sequence", &seqh);
        *bytes += (uint64_t)natsMsg_GetDataLength(m) + (meta ? strlen(meta) : 0);
        seq = (seqh ? strtoull(seqh, NULL, 10) : seq) + 1;
        natsMsg_Destroy(m);
        k++;
    }
    return k;
}

/* W12: a JetStream consumer per subscriber (ephemeral push consumers of
 * new messages on ev.>, no acks), spread over W12_NATS_CONNS connections
 * (NATS's usual way: many subscriptions on a connection); libnats calls
 * the handlers from a pool of W12_THREADS delivery threads. */
#define W12_NATS_CONNS 4
typedef struct nt_fan {
    nt *conns[W12_NATS_CONNS];
    natsSubscription **subs;
    size_t n;
} nt_fan;

static void nt_fan_on(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc, (void)sub, (void)closure;
    uint64_t t = now_ns();
    const char *id = NULL;
    if (natsMsgHeader_Get(m, "id", &id) == NATS_OK && id) w12_got(id, t);
    natsMsg_Destroy(m);
}

static void *nt_fan_open(size_t n)
{
    nt_fan *f = calloc(1, sizeof *f);
    f->n = n;
    f->subs = calloc(n, sizeof *f->subs);
    nchk(nats_SetMessageDeliveryPoolSize(W12_THREADS), "nats delivery pool");
    for (int k = 0; k < W12_NATS_CONNS; k++) {
        nt *c = calloc(1, sizeof *c);
        natsOptions *o;
        nchk(natsOptions_Create(&o), "nats options");
        natsOptions_SetURL(o, nats_url);
        natsOptions_UseGlobalMessageDelivery(o, true);
        nchk(natsConnection_Connect(&c->nc, o), "nats connect");
        natsOptions_Destroy(o);
        nchk(natsConnection_JetStream(&c->js, c->nc, NULL), "nats jetstream");
        f->conns[k] = c;
    }
    for (size_t j = 0; j < n; j++) {
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Config.DeliverPolicy = js_DeliverNew;
        so.Config.AckPolicy = js_AckNone;
        so.Config.MemoryStorage = true;
        nchk(js_Subscribe(&f->subs[j], f->conns[j % W12_NATS_CONNS]->js, "ev.>", nt_fan_on, NULL, NULL, &so, NULL),
             "nats subscribe");
    }
    return f;
}

static void nt_fan_close(void *p)
{
    nt_fan *f = p;
    for (size_t j = 0; j < f->n; j++) {
        natsSubscription_Unsubscribe(f->subs[j]);
        natsSubscription_Destroy(f->subs[j]);
    }
    for (int k = 0; k < W12_NATS_CONNS; k++) {
        jsCtx_Destroy(f->conns[k]->js);
        natsConnection_Destroy(f->conns[k]->nc);
        free(f->conns[k]);
    }
    free(f->subs);
    free(f);
}

const backend nats_backend = {"NATS JetStream", nt_setup,        nt_connect,     nt_disconnect,  nt_append,
                                     nt_version,       nt_read,         nt_ids,         nt_sub_open,    nt_sub_next,
                                     nt_sub_close,     nt_group_create, nt_member_open, nt_member_next, nt_member_ack,
                                     nt_member_close, nt_load, "direct gets by subject, one per message",
                                     nt_fan_open, nt_fan_close, "a JetStream push consumer each on 4 connections, 2 delivery threads"};
#endif
