/*
 * connect.c - the C client's way to a server (client_connect_hosts): each
 * host of the connection string in turn, a TCP connection (within
 * connect_timeout_ms), TLS when the string asks for it (tls.c), then
 * HTTP/2 (client_h2_start, conn.c); with +discover, Gossip names the
 * cluster's leader and the client moves to it. The reasons of every host
 * that failed go into one error message, TLS failures first.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/client_int.h"
#include "kurrentdb/gossip.pb-c.h"
#include "kurrentdb/shared.pb-c.h"

#define READ_BUF (256u << 10) /* the connection's receive buffer */

static int tcp_connect(factum_client *c, const client_host *h, char *why, size_t wlen)
{
    char port[8];
    snprintf(port, sizeof port, "%u", h->port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int g = getaddrinfo(h->name, port, &hints, &res);
    if (g) {
        snprintf(why, wlen, "%s", g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
        return FACTUM_ECONNECT;
    }
    int rc = FACTUM_ECONNECT;
    snprintf(why, wlen, "no address");
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            snprintf(why, wlen, "socket: %s", strerror(errno));
            continue;
        }
        int err = 0;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            err = errno;
            if (err == EINPROGRESS) {
                struct pollfd pfd = {fd, POLLOUT, 0};
                int pr;
                do
                    pr = poll(&pfd, 1, c->connect_timeout_ms ? (int)c->connect_timeout_ms : -1);
                while (pr < 0 && errno == EINTR);
                socklen_t sl = sizeof err;
                if (pr == 0)
                    err = ETIMEDOUT;
                else if (pr < 0)
                    err = errno;
                else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
                    err = errno;
            }
        }
        if (err) {
            snprintf(why, wlen, "%s", strerror(err));
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->fd = fd;
        rc = 0;
        break;
    }
    freeaddrinfo(res);
    return rc;
}

/* +discover: ask the seed for the cluster. 1 and *leader if Gossip names an
 * alive leader, 0 if it does not (or the server has no Gossip): stay with
 * the seed. */
static int discover_leader(factum_client *c, client_host *leader)
{
    EventStore__Client__Empty e = EVENT_STORE__CLIENT__EMPTY__INIT;
    ProtobufCMessage *m;
    int rc = client_unary(c, NULL, "/event_store.client.gossip.Gossip/Read", &e.base,
                          &event_store__client__gossip__cluster_info__descriptor, &m);
    if (rc) return 0;
    const EventStore__Client__Gossip__ClusterInfo *ci = (const void *)m;
    for (size_t i = 0; i < ci->n_members; i++) {
        const EventStore__Client__Gossip__MemberInfo *mi = ci->members[i];
        if (!mi || !mi->is_alive ||
            mi->state != EVENT_STORE__CLIENT__GOSSIP__MEMBER_INFO__VNODE_STATE__Leader)
            continue;
        const EventStore__Client__Gossip__EndPoint *ep = mi->http_end_point;
        if (!ep || !ep->address || !ep->address[0] || ep->port == 0 || ep->port > 65535) continue;
        if (strlen(ep->address) >= sizeof leader->name) continue;
        snprintf(leader->name, sizeof leader->name, "%s", ep->address);
        leader->port = (uint16_t)ep->port;
        return 1;
    }
    return 0;
}

/* Connect to one host: 0, or FACTUM_ECONNECT / -ENOMEM with why. */
static void host_text(const client_host *h, char *buf, size_t n)
{
    snprintf(buf, n, strchr(h->name, ':') ? "[%s]:%u" : "%s:%u", h->name, h->port);
}

static int connect_host(factum_client *c, const client_host *h, char *why, size_t wlen)
{
    client_disconnect(c);
    host_text(h, c->authority, sizeof c->authority);
    int rc = tcp_connect(c, h, why, wlen);
    if (!rc && c->url.tls) rc = client_tls_start(c, h, why, wlen);
    if (!rc) rc = client_h2_start(c, why, wlen);
    if (rc) client_disconnect(c);
    return rc;
}

int client_connect_hosts(factum_client *c)
{
    if (!c->rbuf) {
        if (!(c->rbuf = malloc(READ_BUF))) return -ENOMEM;
        c->rcap = READ_BUF;
    }
    if (c->url.tls && !c->ssl_ctx) {
        int rc = client_tls_context(c);
        if (rc) return rc;
    }
    char why[600] = "", all[1000] = "";
    size_t used = 0;
    int tls_failed = 0;
    for (size_t i = 0; i < c->url.n_hosts; i++) {
        const client_host *h = &c->url.hosts[i];
        int rc = connect_host(c, h, why, sizeof why);
        if (rc == -ENOMEM) {
            client_seterr(c, "out of memory");
            return rc;
        }
        if (!rc && c->url.discover) {
            client_host leader;
            int d = discover_leader(c, &leader);
            if (c->fd < 0) {
                snprintf(why, sizeof why, "lost while asking for the cluster's leader: %.300s",
                         client_errbuf());
                rc = FACTUM_ECONNECT;
            } else if (d == 1 && (strcmp(leader.name, h->name) || leader.port != h->port)) {
                rc = connect_host(c, &leader, why, sizeof why);
                if (rc == -ENOMEM) return rc;
                if (rc) {
                    char w2[sizeof why], lt[300];
                    host_text(&leader, lt, sizeof lt);
                    snprintf(w2, sizeof w2, "its leader %.280s: %.300s", lt, why);
                    memcpy(why, w2, sizeof why);
                }
            }
        }
        if (!rc) return 0;
        if (rc == FACTUM_ETLS) tls_failed = 1;
        char ht[300];
        host_text(h, ht, sizeof ht);
        int n = snprintf(all + used, sizeof all - used, "%s%s: %s", used ? "; " : "", ht, why);
        if (n > 0) used = used + (size_t)n < sizeof all ? used + (size_t)n : sizeof all - 1;
    }
    if (tls_failed) {
        /* Someone answered, and TLS is what failed: say that first. */
        client_seterr(c, "%s", all);
        return FACTUM_ETLS;
    }
    client_seterr(c, "no server answered: %s", all);
    return FACTUM_ECONNECT;
}
