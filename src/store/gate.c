/*
 * gate.c - acknowledgement gates (factum_ack_gate_*, factum.h).
 *
 * A consumer that must have applied an append before its writer hears of
 * it (an inline read model) adds a gate and releases it as it applies. The
 * committing thread hands every completed group to gate_hold: while some
 * gate has not passed the group's last committed position, the group's
 * successful requests are held (in commit order) instead of acknowledged;
 * failed ones are acknowledged at once (nothing of them is to be applied).
 * Releasing a gate recomputes the lowest position all gates passed and
 * acknowledges the held requests up to it, from the releasing thread
 * (writer_complete_now hands callbacks to the writer thread, so they still
 * run there, in commit order).
 *
 * Invariants (tests cite them as GATE-n):
 *  GATE-1  A request is held only if it succeeded and some gate had not
 *          passed the committed position when it completed; it is let go
 *          exactly once, when every gate passed that position, when the
 *          gates holding it are removed, or when the store closes.
 *  GATE-2  Holding and releasing are ordered by gate_mu: a release between
 *          a group's check and its holding cannot be missed.
 *  GATE-3  The writer never waits for a gate: it goes on with the next
 *          group while earlier ones are held (the consumer applies them in
 *          batches, as group commit does).
 */
#include <errno.h>
#include <stdlib.h>

#include "store/store_int.h"

struct factum_ack_gate {
    factum_store *s;
    uint64_t pos;
};

int gate_init(factum_store *s)
{
    atomic_store(&s->n_gates, 0);
    s->gate_min = UINT64_MAX;
    return -pthread_mutex_init(&s->gate_mu, NULL);
}

void gate_deinit(factum_store *s)
{
    pthread_mutex_destroy(&s->gate_mu);
    free(s->gates);
    s->gates = NULL;
}

/* The held requests every gate passed (gate_mu held). */
static wreq *take_passed(factum_store *s)
{
    wreq *out = NULL, **tail = &out;
    while (s->held_head && s->held_head->gate_pos <= s->gate_min) {
        wreq *r = s->held_head;
        s->held_head = r->next;
        r->next = NULL;
        *tail = r;
        tail = &r->next;
    }
    if (!s->held_head) s->held_tail = NULL;
    return out;
}

static void recompute(factum_store *s)
{
    uint64_t m = UINT64_MAX;
    size_t n = atomic_load(&s->n_gates);
    for (size_t i = 0; i < n; i++)
        if (s->gates[i]->pos < m) m = s->gates[i]->pos;
    s->gate_min = m;
}

wreq *gate_hold(factum_store *s, wreq *list)
{
    pthread_mutex_lock(&s->gate_mu);
    uint64_t need = atomic_load(&s->committed_pos);
    if (!atomic_load(&s->n_gates) || s->gate_min >= need) {
        pthread_mutex_unlock(&s->gate_mu);
        return list;
    }
    wreq *rest = NULL, **rest_tail = &rest;
    for (wreq *r = list; r;) {
        wreq *next = r->next;
        r->next = NULL;
        if (r->rc == 0) {
            r->gate_pos = need;
            if (s->held_tail)
                s->held_tail->next = r;
            else
                s->held_head = r;
            s->held_tail = r;
        } else {
            *rest_tail = r;
            rest_tail = &r->next;
        }
        r = next;
    }
    pthread_mutex_unlock(&s->gate_mu);
    return rest;
}

void gate_release_all(factum_store *s)
{
    pthread_mutex_lock(&s->gate_mu);
    size_t n = atomic_load(&s->n_gates);
    for (size_t i = 0; i < n; i++)
        s->gates[i]->s = NULL; /* orphaned: later calls on it do nothing but free */
    atomic_store(&s->n_gates, 0);
    s->gate_min = UINT64_MAX;
    wreq *l = take_passed(s);
    pthread_mutex_unlock(&s->gate_mu);
    if (l) writer_complete_now(s, l);
}

int factum_ack_gate_add(factum_store *s, uint64_t position, factum_ack_gate **out)
{
    if (!s || !out) return FACTUM_EINVAL;
    factum_ack_gate *g = calloc(1, sizeof *g);
    if (!g) return -ENOMEM;
    g->s = s;
    g->pos = position;
    pthread_mutex_lock(&s->gate_mu);
    size_t n = atomic_load(&s->n_gates);
    if (n == s->cap_gates) {
        size_t cap = s->cap_gates ? 2 * s->cap_gates : 4;
        factum_ack_gate **p = realloc(s->gates, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&s->gate_mu);
            free(g);
            return -ENOMEM;
        }
        s->gates = p;
        s->cap_gates = cap;
    }
    s->gates[n] = g;
    atomic_store_explicit(&s->n_gates, n + 1, memory_order_release);
    recompute(s);
    pthread_mutex_unlock(&s->gate_mu);
    *out = g;
    return 0;
}

void factum_ack_gate_release(factum_ack_gate *g, uint64_t position)
{
    if (!g) return;
    factum_store *s = g->s;
    if (!s) return;
    pthread_mutex_lock(&s->gate_mu);
    if (!g->s || position <= g->pos) {
        pthread_mutex_unlock(&s->gate_mu);
        return;
    }
    g->pos = position;
    recompute(s);
    wreq *l = take_passed(s);
    pthread_mutex_unlock(&s->gate_mu);
    if (l) writer_complete_now(s, l);
}

void factum_ack_gate_remove(factum_ack_gate *g)
{
    if (!g) return;
    factum_store *s = g->s;
    if (!s) {
        free(g);
        return;
    }
    pthread_mutex_lock(&s->gate_mu);
    wreq *l = NULL;
    if (g->s) {
        size_t n = atomic_load(&s->n_gates);
        for (size_t i = 0; i < n; i++)
            if (s->gates[i] == g) {
                s->gates[i] = s->gates[n - 1];
                atomic_store(&s->n_gates, n - 1);
                break;
            }
        recompute(s);
        l = take_passed(s);
    }
    pthread_mutex_unlock(&s->gate_mu);
    if (l) writer_complete_now(s, l);
    free(g);
}
