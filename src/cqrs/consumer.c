/*
 * consumer.c - idempotent consumers (factum_app.h): a subscription whose
 * events are handed to the application's handler so that each event's
 * effect happens once across crashes, either inside one SQLite transaction
 * with the consumer's checkpoint (mode a) or as appends with ids derived
 * from the source event, checkpointed in the store afterwards (mode b).
 *
 * Design note (tests cite CN-n):
 *  CN-1  Mode a: the handler's effects for a batch and the checkpoint row
 *        that covers exactly that batch are committed by one COMMIT; a
 *        crash anywhere before it leaves neither, so the restarted
 *        consumer resumes after the last committed batch: each effect once.
 *  CN-2  Mode b: the checkpoint is appended only after the handler ran for
 *        every event it covers; after a crash the events since it are
 *        handled again, and their effects, appended with derived ids, are
 *        idempotent replays (docs/durability.md "Idempotent appends").
 *  CN-3  After any error the subscription is reopened at the committed
 *        checkpoint, so the events of a failed batch are handled again by
 *        the next poll, never skipped.
 */
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/seal.h"
#include "factum_app.h"

#define NAME_MAX_LEN 200
#define CP_PREFIX    "$consumer-"

struct factum_consumer {
    factum_store *store;
    factum_reader *rdr; /* the batch's sealed events open here (reset per poll; store/seal.h) */
    factum_consumer_options o;
    char *name;
    char *stream; /* NULL: $all */
    char cp_stream[sizeof CP_PREFIX + NAME_MAX_LEN];
    factum_sub *sub;
    uint64_t checkpoint; /* FACTUM_END: none */
    factum_sub_item *items;
};

void factum_consumer_options_init(factum_consumer_options *o)
{
    memset(o, 0, sizeof *o);
    o->batch_events = 256;
    o->exclude_system = 1;
}

static int sql_exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : FACTUM_ETARGET;
}

/* Mode a: the checkpoint row, or FACTUM_END. */
static int cp_read_sql(factum_consumer *c)
{
    if (sql_exec(c->o.db, "CREATE TABLE IF NOT EXISTS factum_consumer_checkpoints("
                          "name TEXT PRIMARY KEY, position INTEGER NOT NULL)"))
        return FACTUM_ETARGET;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->o.db, "SELECT position FROM factum_consumer_checkpoints WHERE name = ?1", -1,
                           &st, NULL) != SQLITE_OK)
        return FACTUM_ETARGET;
    sqlite3_bind_text(st, 1, c->name, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    c->checkpoint = r == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : FACTUM_END;
    sqlite3_finalize(st);
    return r == SQLITE_ROW || r == SQLITE_DONE ? 0 : FACTUM_ETARGET;
}

static int cp_write_sql(factum_consumer *c, uint64_t pos)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->o.db,
                           "INSERT INTO factum_consumer_checkpoints(name, position) VALUES (?1, ?2) "
                           "ON CONFLICT(name) DO UPDATE SET position = excluded.position",
                           -1, &st, NULL) != SQLITE_OK)
        return FACTUM_ETARGET;
    sqlite3_bind_text(st, 1, c->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)pos);
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    return r == SQLITE_DONE ? 0 : FACTUM_ETARGET;
}

/* Mode b: the checkpoint is the last event of `$consumer-<name>`,
 * {"position": P}. */
static int cp_read_store(factum_consumer *c)
{
    factum_event ev;
    size_t n;
    c->checkpoint = FACTUM_END;
    int rc = factum_read_stream(c->store, c->cp_stream, FACTUM_END, FACTUM_BACKWARD, &ev, 1, &n, NULL);
    if (rc == FACTUM_ENOTFOUND) return 0;
    if (rc) return rc;
    if (!n) return 0;
    char buf[64];
    size_t len = ev.data_len < sizeof buf - 1 ? ev.data_len : sizeof buf - 1;
    memcpy(buf, ev.data, len);
    buf[len] = 0;
    unsigned long long p;
    if (sscanf(buf, "{\"position\":%llu}", &p) != 1) return FACTUM_ECORRUPT;
    c->checkpoint = p;
    return 0;
}

static int cp_write_store(factum_consumer *c, uint64_t pos)
{
    char buf[64];
    int len = snprintf(buf, sizeof buf, "{\"position\":%" PRIu64 "}", pos);
    factum_event_data e = {0};
    e.type = "$checkpoint";
    e.flags = FACTUM_EVENT_JSON;
    e.data = buf;
    e.data_len = (size_t)len;
    return factum_append(c->store, c->cp_stream, FACTUM_ANY, &e, 1, NULL);
}

static int subscribe(factum_consumer *c)
{
    factum_sub_close(c->sub);
    c->sub = NULL;
    factum_sub_options so;
    factum_sub_options_init(&so);
    so.stream = c->stream;
    so.filter = c->stream ? NULL : c->o.filter;
    if (c->checkpoint != FACTUM_END) {
        so.from = FACTUM_SUB_AFTER;
        so.after = c->checkpoint;
    }
    return factum_sub_open(c->store, &so, &c->sub);
}

int factum_consumer_open(factum_store *s, const factum_consumer_options *o, factum_consumer **out)
{
    if (!s || !o || !out || !o->handle || !o->name) return FACTUM_EINVAL;
    *out = NULL;
    size_t nl = strnlen(o->name, NAME_MAX_LEN + 1);
    if (!nl || nl > NAME_MAX_LEN || factum_check_stream_name(o->name, nl)) return FACTUM_EINVAL;
    int all = !o->stream || !strcmp(o->stream, "$all");
    if (!all && o->filter) return FACTUM_EINVAL;
    factum_consumer *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    c->store = s;
    c->o = *o;
    if (!c->o.batch_events) c->o.batch_events = 256;
    if (c->o.batch_events < 4) c->o.batch_events = 4;
    int rc = -ENOMEM;
    if (!(c->name = strdup(o->name))) goto fail;
    if (!all && !(c->stream = strdup(o->stream))) goto fail;
    if (!(c->items = calloc(c->o.batch_events, sizeof *c->items))) goto fail;
    snprintf(c->cp_stream, sizeof c->cp_stream, CP_PREFIX "%s", c->name);
    if (c->o.db) {
        rc = cp_read_sql(c);
    } else {
        /* keep only the latest checkpoint event */
        factum_stream_info info;
        rc = cp_read_store(c);
        if (!rc) rc = factum_stream_get_info(s, c->cp_stream, &info);
        if (!rc && info.meta.max_count != 1)
            rc = factum_set_stream_metadata(s, c->cp_stream, FACTUM_ANY, "{\"$maxCount\":1}", 15, NULL);
    }
    if (rc) goto fail;
    if ((rc = subscribe(c))) goto fail;
    *out = c;
    return 0;
fail:
    factum_consumer_close(c);
    return rc;
}

void factum_consumer_close(factum_consumer *c)
{
    if (!c) return;
    factum_sub_close(c->sub);
    factum_reader_free(c->rdr);
    free(c->items);
    free(c->stream);
    free(c->name);
    free(c);
}

uint64_t factum_consumer_checkpoint(const factum_consumer *c)
{
    return c ? c->checkpoint : FACTUM_END;
}

void factum_consumer_effect_id(const char *consumer_name, const factum_event *source, uint32_t index,
                               uint8_t out[16])
{
    size_t nl = strlen(consumer_name);
    char salt[NAME_MAX_LEN + 1 + FACTUM_MAX_STREAM_LEN];
    if (nl > NAME_MAX_LEN) nl = NAME_MAX_LEN;
    size_t sl = source->stream_len < FACTUM_MAX_STREAM_LEN ? source->stream_len : FACTUM_MAX_STREAM_LEN;
    memcpy(salt, consumer_name, nl);
    salt[nl] = '\n';
    memcpy(salt + nl + 1, source->stream, sl);
    factum_app_derive_id(source->id, salt, nl + 1 + sl, index, out);
}

static int is_system(const factum_event *ev)
{
    return (ev->stream_len && ev->stream[0] == '$') || (ev->type_len && ev->type[0] == '$');
}

int factum_consumer_poll(factum_consumer *c, int timeout_ms, size_t *handled)
{
    if (handled) *handled = 0;
    if (!c) return FACTUM_EINVAL;
    size_t n;
    int rc;
    if (!c->sub && (rc = subscribe(c))) return rc;
    holder_bind hb = holder_reader_enter(c->store, &c->rdr, 1); /* the batch before is handled */
    rc = factum_sub_poll(c->sub, c->items, c->o.batch_events, &n, timeout_ms);
    holder_reader_leave(hb);
    if (rc) return rc;
    uint64_t last = FACTUM_END;
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (c->items[i].kind == FACTUM_SUB_EVENT || c->items[i].kind == FACTUM_SUB_CHECKPOINT)
            last = c->items[i].position;
    if (last == FACTUM_END) return 0;
    if (c->o.db && sql_exec(c->o.db, "BEGIN IMMEDIATE")) {
        rc = FACTUM_ETARGET;
        goto reposition;
    }
    for (size_t i = 0; i < n; i++) {
        const factum_sub_item *it = &c->items[i];
        if (it->kind != FACTUM_SUB_EVENT) continue;
        if (c->o.exclude_system && is_system(&it->event)) continue;
        if ((rc = c->o.handle(c->o.ctx, c->o.db, &it->event))) goto rollback;
        count++;
    }
    if (c->o.db) {
        /* CN-1: the checkpoint in the effects' transaction */
        if ((rc = cp_write_sql(c, last))) goto rollback;
        if (sql_exec(c->o.db, "COMMIT")) {
            rc = FACTUM_ETARGET;
            goto rollback;
        }
    } else if ((rc = cp_write_store(c, last))) { /* CN-2 */
        goto reposition;
    }
    c->checkpoint = last;
    if (handled) *handled = count;
    return 0;
rollback:
    if (c->o.db) sql_exec(c->o.db, "ROLLBACK");
reposition : {
    /* CN-3 */
    int r2 = subscribe(c);
    (void)r2; /* the next poll reports it (a NULL subscription fails there) */
    return rc;
}
}
