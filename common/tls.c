/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Vigil's nng TLS engine on mbedTLS 2.28, and the helpers that build nng TLS
 * configurations from files.  See tls.h for why the engine exists.
 *
 * nng allocates (zeroed) and frees our config and connection structs; it
 * serializes calls on one connection under that connection's lock.  What
 * runs outside that lock: the handshake deadline's callback (it shares only
 * conn->hs_watch, an atomic, with the connection's calls), the idle limit's
 * callback (the atomics idle_watch, idle_since, rx_wait, tx_wait, and
 * hs_watch), and the per-address tables (each with its own lock, taken
 * last, nothing called under it).
 *
 * Line numbers "tls_common.c:N" are nng v1.5.2's src/supplemental/tls/.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/asn1.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/x509_crt.h>
#include <nng/supplemental/tls/engine.h>

#include "fsutil.h"

/*
 * The engine follows nng 1.5.2's TLS framework closely: when it may return
 * NNG_EAGAIN, which errors stop listeners and dialers, and that the
 * connection handed to conn init is the nng_stream (tls_common.c:56-57).
 * Another nng must be read again before this builds against it.
 */
#if NNG_MAJOR_VERSION != 1 || NNG_MINOR_VERSION != 5
#error "common/tls.c was written against nng 1.5's TLS framework; re-check it for this nng"
#endif

#define TLS_CN_MAX   64
#define TLS_NAME_MAX 256

/*
 * mbedTLS calls that ended in WANT_READ/WRITE without a BIO callback having
 * blocked (it consumed a record that carried no data, e.g. a warning alert),
 * repeated at once before the call gives up: a peer sending nothing but
 * such records fails rather than spinning.
 */
#define TLS_SPURIOUS_MAX 32

/* Slots of the per-address table: a power of two, twice TLS_ADDRS_MAX so probes stay short. */
#define TLS_ADDR_SLOTS (2 * TLS_ADDRS_MAX)

/*
 * TLS 1.2 with ECDHE key exchange and AEAD ciphers only (design: pin suites).
 * ChaCha20-Poly1305 first: in the mbedTLS 2.28 this links against, AES-GCM
 * runs at 130-160 MB/s and ChaCha20-Poly1305 at 250-260 MB/s (16 KiB records,
 * one core here), and the console decrypts every byte the fleet sends.  The
 * server's order decides, and both ends share this list.
 */
static const int tls_ciphersuites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    0,
};

/* One DRBG for the process; mbedTLS is built with MBEDTLS_THREADING_C, so it locks itself. */
static mbedtls_entropy_context tls_entropy;
static mbedtls_ctr_drbg_context tls_drbg;

/*
 * The bridge from nng's pipe option to our connection: reading
 * NNG_OPT_TLS_VERIFIED calls engine_conn_verified() synchronously in the
 * reader's thread, which leaves the connection's peer CN here.
 */
static __thread char tls_peer_cn_slot[TLS_CN_MAX + 1];
static __thread char tls_peer_serial_slot[TLS_SERIAL_HEX_MAX + 1];

struct nng_tls_engine_config {
	mbedtls_ssl_config conf;
	bool server;
	mbedtls_x509_crt ca;
	mbedtls_x509_crl crl;
	mbedtls_x509_crt own_cert;
	mbedtls_pk_context own_key;
	int auth_mode;
	bool server_is_ip;
	unsigned char server_ip[16];
	size_t server_ip_len;
	char server_name[TLS_NAME_MAX];
	_Atomic(struct tls_guard *) guard; /* connection limits (tls_conn_limits_set); NULL: none */
	/* tls_config_set_peer_check: set once before use, read by verify_cb on any thread. */
	_Atomic(tls_peer_refuse_fn) refuse;
	_Atomic(void *) refuse_arg;
};

/*
 * The bridge from an nng_tls_config to our part of it (config_engine()):
 * nng 1.5 offers no accessor, but it calls our version op synchronously,
 * under the configuration's lock and with our part, and never refuses
 * (tls_common.c:1281-1295: cfg->busy is never set in 1.5.2).
 */
static __thread bool tls_cfg_probe;
static __thread struct nng_tls_engine_config *tls_cfg_probe_slot;

/* Where a connection's handshake deadline stands (conn->hs_watch). */
enum {
	HS_UNWATCHED = 0, /* no deadline */
	HS_WATCHING,	  /* the deadline's sleep is running */
	HS_DONE,	  /* the handshake ended (over, failed or closed) before the deadline */
	HS_EXPIRED,	  /* the deadline came first: the connection fails with NNG_ETIMEDOUT */
};

/* The deadline callback's steps, one aio for all: sleep, then poke the send and recv queues. */
enum tls_poke { POKE_SLEEP, POKE_SEND, POKE_RECV, POKE_DONE };

/* Where a connection's idle limit stands (conn->idle_watch; tls.h: tls_conn_limits). */
enum {
	IDLE_UNWATCHED = 0, /* no idle limit */
	IDLE_WATCHING,	    /* the idle timer runs */
	IDLE_ENDED,	    /* the connection failed or closed first: the timer stops */
	IDLE_EXPIRED,	    /* the limit came first: the connection fails with NNG_ETIMEDOUT */
};

struct nng_tls_engine_conn {
	void *nng_conn; /* nng's side, for nng_tls_engine_send/recv; in nng 1.5 its nng_stream */
	struct nng_tls_engine_config *cfg;
	mbedtls_ssl_context ssl;
	bool ssl_ready;
	bool hs_over; /* mbedTLS finished the handshake; peer identity below is set */
	bool verified;
	bool bio_blocked; /* in the current mbedTLS call, a BIO callback got NNG_EAGAIN */
	int bio_err;	  /* ... or this other error */
	int fatal;	  /* latched nng error: every later call returns it, mbedTLS untouched */
	bool addr_counted;
	unsigned char addr_key[16];
	atomic_int hs_watch;
	nng_aio *hs_aio;
	enum tls_poke poke; /* only the deadline callback (and fini, after stopping it) */
	uint8_t poke_byte;  /* the pokes' buffer: how the engine tells them from real I/O */
	char peer_cn[TLS_CN_MAX + 1];
	char peer_serial[TLS_SERIAL_HEX_MAX + 1];
	bool addr_known;	 /* addr_key holds the peer's address (server connections) */
	struct tls_guard *guard; /* its configuration's connection limits, or NULL */
	bool guard_counted;	 /* counted in guard: give back at fini */
	/* The idle limit: the timer's callback reads these without the connection's lock. */
	atomic_int idle_watch;
	nng_aio *idle_aio;
	enum tls_poke idle_poke; /* only the idle callback (and fini, after stopping it) */
	atomic_llong idle_since; /* monotonic ms: accepted, or the last data the server sent */
	atomic_bool rx_wait;	 /* the last application recv found nothing: a read waits */
	atomic_bool tx_wait;	 /* the last application send found no room: a write waits */
};

/* ---- limits and counters (tls.h: tls_limits) ---- */

static atomic_uint limit_handshake_ms = TLS_HANDSHAKE_MS_DEFAULT;
static atomic_uint limit_per_addr = TLS_HANDSHAKES_PER_ADDR_DEFAULT;
static atomic_ullong stat_timeouts;

/*
 * Connections per source address: open addressing with linear probing,
 * keyed by the address (IPv4 as ::ffff:a.b.c.d, IPv6 cut to its /64) hashed
 * with a per-process seed.  An entry lives while its count is above zero; at
 * max_entries entries new addresses are refused.  Two kinds of tables: the
 * process-wide one of server connections in handshake (hs_table, under
 * addr_lock), and one per configuration with connection limits (struct
 * tls_guard, under its lock).  The functions below expect the table's lock.
 */
struct tls_addr_slot {
	unsigned char key[16];
	uint32_t count; /* 0: free */
};

struct tls_addr_table {
	struct tls_addr_slot *slots;
	size_t mask;	    /* slots - 1; the number of slots is a power of two */
	size_t entries;	    /* slots in use */
	size_t max_entries; /* at most half the slots, so probes stay short */
};

static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static pthread_mutex_t addr_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_addr_slot hs_slots[TLS_ADDR_SLOTS];
static struct tls_addr_table hs_table = {
    .slots = hs_slots, .mask = TLS_ADDR_SLOTS - 1, .max_entries = TLS_ADDRS_MAX};
static uint64_t addr_seed;
static uint64_t addr_handshaking, addr_refused_cap, addr_refused_full;

static size_t addr_hash(const struct tls_addr_table *t, const unsigned char key[16])
{
	uint64_t h = 0xcbf29ce484222325ULL ^ addr_seed;

	for (int i = 0; i < 16; i++) {
		h ^= key[i];
		h *= 0x100000001b3ULL;
	}
	return (size_t)(h ^ (h >> 32)) & t->mask;
}

/* The slot holding key, or the free slot where it would go. */
static size_t addr_find(const struct tls_addr_table *t, const unsigned char key[16])
{
	size_t i = addr_hash(t, key);

	while (t->slots[i].count != 0 && memcmp(t->slots[i].key, key, 16) != 0)
		i = (i + 1) & t->mask;
	return i;
}

/* Free slot i, moving later entries of its probe run back (no tombstones). */
static void addr_slot_free(struct tls_addr_table *t, size_t i)
{
	size_t j = i;

	for (;;) {
		size_t k;

		j = (j + 1) & t->mask;
		if (t->slots[j].count == 0)
			break;
		k = addr_hash(t, t->slots[j].key);
		/* j stays if its home k lies cyclically in (i, j]. */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		t->slots[i] = t->slots[j];
		i = j;
	}
	t->slots[i].count = 0;
}

/* Count one more connection from key.  Returns 0, -EBUSY (at cap, >= 1) or -ENOSPC (full). */
static int table_take(struct tls_addr_table *t, const unsigned char key[16], unsigned cap)
{
	size_t i = addr_find(t, key);

	if (t->slots[i].count >= cap) /* cap >= 1: a free slot never matches */
		return -EBUSY;
	if (t->slots[i].count == 0 && t->entries >= t->max_entries)
		return -ENOSPC;
	if (t->slots[i].count++ == 0) {
		memcpy(t->slots[i].key, key, 16);
		t->entries++;
	}
	return 0;
}

/* Count one connection from key less; returns whether key was counted. */
static bool table_give(struct tls_addr_table *t, const unsigned char key[16])
{
	size_t i = addr_find(t, key);

	if (t->slots[i].count == 0)
		return false;
	if (--t->slots[i].count == 0) {
		addr_slot_free(t, i);
		t->entries--;
	}
	return true;
}

/* Count one more handshake from key.  Returns 0, -EBUSY (at cap) or -ENOSPC (table full). */
static int addr_take(const unsigned char key[16], unsigned cap)
{
	int rv;

	pthread_mutex_lock(&addr_lock);
	rv = table_take(&hs_table, key, cap);
	if (rv == -EBUSY)
		addr_refused_cap++;
	else if (rv == -ENOSPC)
		addr_refused_full++;
	else
		addr_handshaking++;
	pthread_mutex_unlock(&addr_lock);
	return rv;
}

static void addr_give(const unsigned char key[16])
{
	pthread_mutex_lock(&addr_lock);
	if (table_give(&hs_table, key))
		addr_handshaking--;
	pthread_mutex_unlock(&addr_lock);
}

/* The table key for sa, or -EAFNOSUPPORT. */
static int addr_key(const nng_sockaddr *sa, unsigned char key[16])
{
	memset(key, 0, 16);
	switch (sa->s_family) {
	case NNG_AF_INET:
		memcpy(key, v4mapped, sizeof(v4mapped));
		memcpy(key + 12, &sa->s_in.sa_addr, 4);
		return 0;
	case NNG_AF_INET6:
		memcpy(key, sa->s_in6.sa_addr, 16);
		if (memcmp(key, v4mapped, sizeof(v4mapped)) != 0)
			memset(key + 8, 0, 8); /* one /64: what one host usually gets */
		return 0;
	default:
		return -EAFNOSUPPORT;
	}
}

/* A key as text for logs: "192.0.2.1", or "2001:db8:1:2::/64". */
static void addr_key_text(const unsigned char key[16], char out[TLS_ADDR_TEXT])
{
	if (memcmp(key, v4mapped, sizeof(v4mapped)) == 0) {
		inet_ntop(AF_INET, key + 12, out, TLS_ADDR_TEXT);
		return;
	}
	if (inet_ntop(AF_INET6, key, out, TLS_ADDR_TEXT - 4) == NULL)
		snprintf(out, TLS_ADDR_TEXT, "?");
	else
		strcat(out, "/64");
}

/* ---- connection limits of one configuration (tls.h: tls_conn_limits) ---- */

/*
 * Owned by its engine configuration and freed with it (engine_config_fini),
 * so after its last connection: each connection holds a reference on the
 * configuration until after our conn fini (tls_common.c, tls_alloc and
 * tls_reap).  lim is fixed once set; table and stats are under lock, taken
 * last, with nothing called under it.
 */
struct tls_guard {
	struct tls_conn_limits lim;
	pthread_mutex_t lock;
	struct tls_addr_table table; /* open connections per address; unused without a cap */
	struct tls_conn_stats stats;
};

/*
 * How soon the idle timer looks again at a connection that is past its
 * limit while its server is busy with it (not waiting on the peer).
 */
#define TLS_IDLE_RECHECK_MS 250

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void guard_free(struct tls_guard *g)
{
	if (g == NULL)
		return;
	pthread_mutex_destroy(&g->lock);
	free(g->table.slots);
	free(g);
}

/* A new guard for lim (checked by the caller); NULL when out of memory. */
static struct tls_guard *guard_new(const struct tls_conn_limits *lim)
{
	struct tls_guard *g = calloc(1, sizeof(*g));
	size_t slots = 2;

	if (g == NULL)
		return NULL;
	g->lim = *lim;
	if (lim->conns_per_addr > 0) {
		/* An entry per open connection at most; twice as many slots keep probes short. */
		while (slots < 2 * (size_t)lim->conns_max)
			slots *= 2;
		if ((g->table.slots = calloc(slots, sizeof(*g->table.slots))) == NULL) {
			free(g);
			return NULL;
		}
		g->table.mask = slots - 1;
		g->table.max_entries = lim->conns_max;
	}
	pthread_mutex_init(&g->lock, NULL);
	return g;
}

/* The peer of a server connection as text, for the counters' last addresses. */
static void conn_addr_text(const struct nng_tls_engine_conn *ec, char out[TLS_ADDR_TEXT])
{
	if (ec->addr_known)
		addr_key_text(ec->addr_key, out);
	else
		snprintf(out, TLS_ADDR_TEXT, "(no IP address)");
}

/*
 * Count a new server connection against g, or refuse it.  Returns 0,
 * -EBUSY (its address is at conns_per_addr) or -ENOSPC (conns_max are open).
 */
static int guard_take(struct tls_guard *g, struct nng_tls_engine_conn *ec)
{
	int rv = 0;

	pthread_mutex_lock(&g->lock);
	if (g->stats.open >= g->lim.conns_max)
		rv = -ENOSPC;
	else if (g->lim.conns_per_addr > 0 && ec->addr_known)
		rv = table_take(&g->table, ec->addr_key, g->lim.conns_per_addr);
	if (rv == 0) {
		g->stats.open++;
		ec->guard_counted = true;
	} else {
		/* The table cannot be full: it has no more entries than connections open. */
		if (rv == -EBUSY)
			g->stats.refused_addr_cap++;
		else
			g->stats.refused_conns_max++;
		conn_addr_text(ec, g->stats.last_refused);
	}
	pthread_mutex_unlock(&g->lock);
	return rv;
}

static void guard_give(struct tls_guard *g, struct nng_tls_engine_conn *ec)
{
	if (!ec->guard_counted)
		return;
	pthread_mutex_lock(&g->lock);
	g->stats.open--;
	if (g->lim.conns_per_addr > 0 && ec->addr_known)
		(void)table_give(&g->table, ec->addr_key);
	pthread_mutex_unlock(&g->lock);
	ec->guard_counted = false;
}

/* Count a connection failed by the idle limit (or its handshake deadline). */
static void guard_note_idle(struct tls_guard *g, const struct nng_tls_engine_conn *ec,
			    bool in_handshake)
{
	pthread_mutex_lock(&g->lock);
	g->stats.idle_closed++;
	if (in_handshake)
		g->stats.idle_in_handshake++;
	conn_addr_text(ec, g->stats.last_idle);
	pthread_mutex_unlock(&g->lock);
}

/* ---- transport callbacks ---- */

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
	struct nng_tls_engine_conn *ec = ctx;
	size_t sz = len;
	int rv = nng_tls_engine_send(ec->nng_conn, buf, &sz);

	if (rv == 0)
		return (int)sz;
	if (rv == NNG_EAGAIN) {
		/* The ring is full, so a TCP send is in flight and will call us back. */
		ec->bio_blocked = true;
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	}
	ec->bio_err = rv;
	return MBEDTLS_ERR_NET_SEND_FAILED;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
	struct nng_tls_engine_conn *ec = ctx;
	size_t sz = len;
	int rv = nng_tls_engine_recv(ec->nng_conn, buf, &sz);

	if (rv == 0)
		return (int)sz;
	if (rv == NNG_EAGAIN) {
		/* nng started (or has) a TCP recv, which will call us back (tls_common.c:1212). */
		ec->bio_blocked = true;
		return MBEDTLS_ERR_SSL_WANT_READ;
	}
	ec->bio_err = rv;
	return MBEDTLS_ERR_NET_RECV_FAILED;
}

/* ---- peer identity ---- */

/* A CN we accept as an identity: what pki_name_valid() allows to be issued. */
static bool cn_acceptable(const unsigned char *p, size_t len)
{
	if (len == 0 || len > TLS_CN_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Copy the single CN of crt's subject into out; a subject with two CNs is ambiguous: refused. */
static bool subject_cn(const mbedtls_x509_crt *crt, char out[TLS_CN_MAX + 1])
{
	const mbedtls_x509_name *n;
	int found = 0;

	for (n = &crt->subject; n != NULL; n = n->next) {
		if (n->oid.p == NULL || MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) != 0)
			continue;
		if (++found > 1 || !cn_acceptable(n->val.p, n->val.len))
			return false;
		memcpy(out, n->val.p, n->val.len);
		out[n->val.len] = '\0';
	}
	return found == 1;
}

/*
 * Whether crt's subjectAltName holds the iPAddress ip (4 or 16 bytes).
 * mbedTLS 2.28 lists only dNSName SANs, so walk the extensions' DER.
 */
static bool crt_has_ip_san(const mbedtls_x509_crt *crt, const unsigned char *ip, size_t iplen)
{
	unsigned char *p = crt->v3_ext.p;
	const unsigned char *end;
	size_t len;

	if (p == NULL || crt->v3_ext.len == 0)
		return false;
	end = p + crt->v3_ext.len;
	if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE))
		return false;
	end = p + len;
	while (p < end) {
		unsigned char *ext_end;
		mbedtls_x509_buf oid;
		int critical = 0;

		if (mbedtls_asn1_get_tag(&p, end, &len,
					 MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE))
			return false;
		ext_end = p + len;
		if (mbedtls_asn1_get_tag(&p, ext_end, &oid.len, MBEDTLS_ASN1_OID))
			return false;
		oid.p = p;
		p += oid.len;
		(void)mbedtls_asn1_get_bool(&p, ext_end, &critical);
		if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING))
			return false;
		if (MBEDTLS_OID_CMP(MBEDTLS_OID_SUBJECT_ALT_NAME, &oid) == 0) {
			unsigned char *q = p;
			const unsigned char *q_end = p + len;
			size_t seq_len;

			if (mbedtls_asn1_get_tag(&q, q_end, &seq_len,
						 MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE))
				return false;
			q_end = q + seq_len;
			while (q < q_end) {
				unsigned char tag = *q++;
				size_t name_len;

				if (mbedtls_asn1_get_len(&q, q_end, &name_len))
					return false;
				if (tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) &&
				    name_len == iplen && memcmp(q, ip, iplen) == 0)
					return true;
				q += name_len;
			}
			return false;
		}
		p = ext_end;
	}
	return false;
}

/* A certificate's serial as lowercase hex of its DER bytes (cut at TLS_SERIAL_HEX_MAX). */
static void serial_hex(const mbedtls_x509_crt *crt, char out[TLS_SERIAL_HEX_MAX + 1])
{
	static const char digits[] = "0123456789abcdef";
	size_t n =
	    crt->serial.len < TLS_SERIAL_HEX_MAX / 2 ? crt->serial.len : TLS_SERIAL_HEX_MAX / 2;

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[crt->serial.p[i] >> 4];
		out[2 * i + 1] = digits[crt->serial.p[i] & 15];
	}
	out[2 * n] = '\0';
}

/*
 * mbedTLS calls this for each certificate of the peer's chain.  For a server
 * named by IP address we check the leaf's IP SANs ourselves (hostname
 * checking was left off for it) and fail the handshake on a mismatch.  A
 * server with a peer check (tls_config_set_peer_check) asks it about the
 * client's leaf: one it refuses fails the handshake as revoked.
 */
static int verify_cb(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
	struct nng_tls_engine_config *cfg = arg;
	tls_peer_refuse_fn refuse = atomic_load(&cfg->refuse);
	char cn[TLS_CN_MAX + 1], serial[TLS_SERIAL_HEX_MAX + 1];

	if (depth == 0 && cfg->server_is_ip &&
	    !crt_has_ip_san(crt, cfg->server_ip, cfg->server_ip_len))
		*flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
	if (depth == 0 && refuse != NULL && subject_cn(crt, cn)) {
		serial_hex(crt, serial);
		if (refuse(cn, serial, atomic_load(&cfg->refuse_arg)))
			*flags |= MBEDTLS_X509_BADCERT_REVOKED;
	}
	return 0;
}

/* ---- connection operations ---- */

/* The stream nng handed to conn init: in nng 1.5, tls_conn starts with its nng_stream. */
static nng_stream *conn_stream(const struct nng_tls_engine_conn *ec)
{
	return (nng_stream *)ec->nng_conn;
}

/* No longer in handshake: give back the address's slot. */
static void conn_addr_give(struct nng_tls_engine_conn *ec)
{
	if (ec->addr_counted)
		addr_give(ec->addr_key);
	ec->addr_counted = false;
}

/*
 * The handshake ended (over, failed, closed): stop the deadline and give
 * back the address slot.  Returns false when the deadline came first.
 */
static bool conn_watch_end(struct nng_tls_engine_conn *ec)
{
	int watch = HS_WATCHING;
	bool in_time = true;

	/*
	 * Whoever moves hs_watch off HS_WATCHING decides.  Cancelling the sleep is
	 * safe under nng's connection lock: while HS_WATCHING, the aio is only
	 * sleeping (the pokes start after HS_EXPIRED), and a sleep's cancel takes
	 * no lock of the connection's.
	 */
	if (atomic_compare_exchange_strong(&ec->hs_watch, &watch, HS_DONE))
		nng_aio_cancel(ec->hs_aio);
	else
		in_time = watch != HS_EXPIRED;
	conn_addr_give(ec);
	return in_time;
}

/* Latch err (an nng error) unless an error is latched already; returns the latched one. */
static int conn_fail(struct nng_tls_engine_conn *ec, int err)
{
	int idle = IDLE_WATCHING;

	if (ec->fatal == 0) {
		ec->fatal = err;
		/*
		 * The idle timer stops at its next wake-up: the connection is going
		 * anyway.  Before the handshake watch ends, so that an idle timer
		 * that reads HS_DONE meanwhile loses its race here (and counts nothing).
		 */
		(void)atomic_compare_exchange_strong(&ec->idle_watch, &idle, IDLE_ENDED);
		(void)conn_watch_end(ec);
	}
	return ec->fatal;
}

/* What every call checks first: a latched error, or a deadline or idle limit that has passed. */
static int conn_check(struct nng_tls_engine_conn *ec)
{
	if (ec->fatal == 0 && (atomic_load(&ec->hs_watch) == HS_EXPIRED ||
			       atomic_load(&ec->idle_watch) == IDLE_EXPIRED))
		return conn_fail(ec, NNG_ETIMEDOUT);
	return ec->fatal;
}

/* After each mbedTLS call: when the handshake has just ended, record the peer's identity. */
static void conn_note_handshake(struct nng_tls_engine_conn *ec)
{
	const mbedtls_x509_crt *peer;

	if (ec->hs_over || ec->ssl.state != MBEDTLS_SSL_HANDSHAKE_OVER)
		return;
	ec->hs_over = true;
	peer = mbedtls_ssl_get_peer_cert(&ec->ssl);
	ec->verified = ec->cfg->auth_mode != MBEDTLS_SSL_VERIFY_NONE && peer != NULL &&
		       mbedtls_ssl_get_verify_result(&ec->ssl) == 0 &&
		       subject_cn(peer, ec->peer_cn);
	if (ec->verified)
		serial_hex(peer, ec->peer_serial);
	else
		ec->peer_cn[0] = '\0';
	if (!conn_watch_end(ec))
		(void)conn_fail(ec, NNG_ETIMEDOUT);
}

/* The nng error for a fatal mbedTLS result (tls.h says which and why). */
static int conn_map_error(const struct nng_tls_engine_conn *ec, int rv)
{
	bool server = ec->cfg->server;
	int high = -rv & 0xff80; /* mbedTLS adds a low-level code to a high-level one */

	switch (rv) {
	case MBEDTLS_ERR_NET_SEND_FAILED:
	case MBEDTLS_ERR_NET_RECV_FAILED:
		/* In nng 1.5.2 only a closed connection fails these (tls_common.c:1166). */
		return ec->bio_err == NNG_ECLOSED ? NNG_ECLOSED : NNG_ECONNRESET;
	case 0: /* mbedtls_ssl_read: end of stream */
	case MBEDTLS_ERR_SSL_CONN_EOF:
	case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
		return server ? NNG_ECONNRESET : NNG_ECONNSHUT;
	case MBEDTLS_ERR_SSL_ALLOC_FAILED:
		return NNG_ENOMEM;
	case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
	case MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE:
	case MBEDTLS_ERR_SSL_PEER_VERIFY_FAILED:
	case MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE:
		return NNG_EPEERAUTH;
	default:
		/* X.509 errors come from parsing the peer's certificate. */
		if (high >= -MBEDTLS_ERR_X509_FEATURE_UNAVAILABLE &&
		    high <= -MBEDTLS_ERR_X509_FATAL_ERROR)
			return NNG_EPEERAUTH;
		return server ? NNG_ECONNABORTED : NNG_ECRYPTO;
	}
}

enum tls_op { OP_HANDSHAKE, OP_RECV, OP_SEND };

/*
 * Run one mbedTLS operation to a result nng can act on.  NNG_EAGAIN only when
 * a BIO callback was told EAGAIN: nng then has a TCP operation in flight and
 * calls us again when it completes (tls_common.c:1025-1083).  A WANT_READ or
 * WANT_WRITE without that means mbedTLS consumed a record carrying no data
 * (mbedtls_ssl_read returns WANT_READ after a no_renegotiation warning alert,
 * ssl_msg.c:5394 in 2.28.3) while more may already sit in nng's buffer,
 * where no TCP recv is started (tls_common.c:1090): nobody would call again,
 * so call mbedTLS again now.
 */
static int conn_drive(struct nng_tls_engine_conn *ec, enum tls_op op, uint8_t *rbuf,
		      const uint8_t *sbuf, size_t *szp)
{
	int rv;

	if ((rv = conn_check(ec)) != 0)
		return rv;
	for (int i = 0; i < TLS_SPURIOUS_MAX; i++) {
		ec->bio_blocked = false;
		ec->bio_err = 0;
		switch (op) {
		case OP_HANDSHAKE:
			rv = mbedtls_ssl_handshake(&ec->ssl);
			break;
		case OP_RECV:
			rv = mbedtls_ssl_read(&ec->ssl, rbuf, *szp);
			break;
		default:
			rv = mbedtls_ssl_write(&ec->ssl, sbuf, *szp);
			break;
		}
		conn_note_handshake(ec);
		if (ec->fatal != 0)
			return ec->fatal;
		if (op == OP_HANDSHAKE ? rv == 0 : (rv > 0 || (op == OP_SEND && rv == 0))) {
			if (szp != NULL)
				*szp = (size_t)rv;
			return 0;
		}
		if (rv != MBEDTLS_ERR_SSL_WANT_READ && rv != MBEDTLS_ERR_SSL_WANT_WRITE)
			return conn_fail(ec, conn_map_error(ec, rv));
		if (ec->bio_blocked)
			return NNG_EAGAIN;
	}
	return conn_fail(ec, ec->cfg->server ? NNG_ECONNABORTED : NNG_EPROTO);
}

/*
 * A timer that found its connection expired (the handshake deadline, the
 * idle limit) pokes it: a one-byte send and then a one-byte recv of
 * poke_byte on the connection's own stream, one after the other on the
 * timer's aio (*step says which is next).  nng runs the engine for the head
 * of each queue first (tls_common.c:930-1023): every call now fails with
 * NNG_ETIMEDOUT, so whatever the owner has queued fails and the owner
 * closes; each poke fails too, never NNG_EAGAIN, so it finishes before
 * nng_stream_send/recv returns.
 */
static void conn_poke_next(struct nng_tls_engine_conn *ec, nng_aio *aio, enum tls_poke *step)
{
	nng_iov iov = {.iov_buf = &ec->poke_byte, .iov_len = 1};

	switch (*step) {
	case POKE_SLEEP:
		*step = POKE_SEND;
		nng_aio_set_iov(aio, 1, &iov);
		nng_stream_send(conn_stream(ec), aio);
		return;
	case POKE_SEND:
		*step = POKE_RECV;
		nng_aio_set_iov(aio, 1, &iov);
		nng_stream_recv(conn_stream(ec), aio);
		return;
	default:
		*step = POKE_DONE;
		return;
	}
}

/*
 * The handshake deadline.  First it sleeps; if the handshake is still under
 * way then, it marks the connection expired and pokes it (conn_poke_next).
 */
static void conn_deadline_cb(void *arg)
{
	struct nng_tls_engine_conn *ec = arg;
	int watch = HS_WATCHING;

	if (ec->poke == POKE_SLEEP) {
		if (nng_aio_result(ec->hs_aio) != 0 ||
		    !atomic_compare_exchange_strong(&ec->hs_watch, &watch, HS_EXPIRED))
			return;
		atomic_fetch_add(&stat_timeouts, 1);
		if (ec->guard != NULL)
			guard_note_idle(ec->guard, ec, true);
	}
	conn_poke_next(ec, ec->hs_aio, &ec->poke);
}

/*
 * The idle limit (tls.h: tls_conn_limits).  It wakes up idle_ms after the
 * later of the accept and the last data the server sent (idle_since),
 * sleeping again while that moved.  Past it, the connection expires only
 * while its server waits on the peer (rx_wait, tx_wait, set by the
 * connection's calls); while the server is busy with a request it looks
 * again shortly.  While the handshake deadline (at most idle_ms for these
 * connections) still runs, the connection is that deadline's to fail.
 */
static void conn_idle_cb(void *arg)
{
	struct nng_tls_engine_conn *ec = arg;
	int64_t now, due;
	int hs, watch = IDLE_WATCHING;

	if (ec->idle_poke != POKE_SLEEP) {
		conn_poke_next(ec, ec->idle_aio, &ec->idle_poke);
		return;
	}
	if (nng_aio_result(ec->idle_aio) != 0 || atomic_load(&ec->idle_watch) != IDLE_WATCHING)
		return;
	if ((hs = atomic_load(&ec->hs_watch)) == HS_EXPIRED)
		return;
	now = mono_ms();
	due = atomic_load(&ec->idle_since) + ec->guard->lim.idle_ms;
	if (now < due) {
		nng_sleep_aio((nng_duration)(due - now), ec->idle_aio);
		return;
	}
	if (hs == HS_WATCHING || !(atomic_load(&ec->rx_wait) || atomic_load(&ec->tx_wait))) {
		nng_sleep_aio(TLS_IDLE_RECHECK_MS, ec->idle_aio);
		return;
	}
	if (!atomic_compare_exchange_strong(&ec->idle_watch, &watch, IDLE_EXPIRED))
		return;
	guard_note_idle(ec->guard, ec, false);
	conn_poke_next(ec, ec->idle_aio, &ec->idle_poke);
}

/* A poke fails the way the connection did; it never reaches mbedTLS. */
static int conn_poke_result(struct nng_tls_engine_conn *ec)
{
	int rv = conn_check(ec);

	return rv != 0 ? rv : NNG_ECANCELED; /* not reached: pokes follow HS_/IDLE_EXPIRED */
}

/*
 * Server side: count the connection against its source address (the
 * handshake cap) and its configuration's limits, or refuse it.
 */
static int conn_addr_take(struct nng_tls_engine_conn *ec)
{
	unsigned cap = atomic_load(&limit_per_addr);
	nng_sockaddr sa;

	if (cap == 0 && ec->guard == NULL)
		return 0;
	/* tls_get asks the TCP stream, which is set before init (tls_common.c:785-796, 889). */
	if (nng_stream_get_addr(conn_stream(ec), NNG_OPT_REMADDR, &sa) != 0)
		return NNG_ECONNABORTED; /* the peer is gone already */
	ec->addr_known = addr_key(&sa, ec->addr_key) == 0;
	/* No accept pause after either refusal: core/listener.c:392, http_server_acccb. */
	if (ec->guard != NULL && guard_take(ec->guard, ec) != 0)
		return NNG_ECONNABORTED;
	if (cap == 0 || !ec->addr_known)
		return 0;
	if (addr_take(ec->addr_key, cap) != 0)
		return NNG_ECONNABORTED;
	ec->addr_counted = true;
	return 0;
}

static int conn_deadline_start(struct nng_tls_engine_conn *ec, unsigned ms)
{
	int rv;

	if ((rv = nng_aio_alloc(&ec->hs_aio, conn_deadline_cb, ec)) != 0)
		return rv;
	ec->poke = POKE_SLEEP;
	atomic_store(&ec->hs_watch, HS_WATCHING);
	nng_sleep_aio((nng_duration)ms, ec->hs_aio);
	return 0;
}

static int conn_idle_start(struct nng_tls_engine_conn *ec)
{
	int rv;

	if ((rv = nng_aio_alloc(&ec->idle_aio, conn_idle_cb, ec)) != 0)
		return rv;
	ec->idle_poke = POKE_SLEEP;
	atomic_store(&ec->idle_since, mono_ms());
	atomic_store(&ec->idle_watch, IDLE_WATCHING);
	nng_sleep_aio((nng_duration)ec->guard->lim.idle_ms, ec->idle_aio);
	return 0;
}

/*
 * nng calls init right after TCP connect/accept (tls_start, tls_common.c:884),
 * and fini in any case, also after a failed init (tls_conn_cb :131-154 frees
 * the stream, tls_reap :859), even on a zeroed struct when TCP failed.
 * An init error on the server side reaches the listener as an accept error.
 */
static int engine_conn_init(nng_tls_engine_conn *ec, void *nng_conn, nng_tls_engine_config *cfg)
{
	unsigned deadline_ms = atomic_load(&limit_handshake_ms);
	unsigned idle_ms = 0;
	int rv;

	ec->nng_conn = nng_conn;
	ec->cfg = cfg;
	if (cfg->server && (ec->guard = atomic_load(&cfg->guard)) != NULL)
		idle_ms = ec->guard->lim.idle_ms;
	if (cfg->server && (rv = conn_addr_take(ec)) != 0)
		return rv;
	/* An idle connection must not outlive its idle limit in the handshake either. */
	if (idle_ms > 0 && (deadline_ms == 0 || idle_ms < deadline_ms))
		deadline_ms = idle_ms;
	mbedtls_ssl_init(&ec->ssl);
	ec->ssl_ready = true;
	if ((rv = mbedtls_ssl_setup(&ec->ssl, &cfg->conf)) != 0)
		return rv == MBEDTLS_ERR_SSL_ALLOC_FAILED ? NNG_ENOMEM : NNG_EINTERNAL;
	mbedtls_ssl_set_bio(&ec->ssl, ec, bio_send, bio_recv, NULL);
	if (cfg->server_name[0] != '\0' && !cfg->server_is_ip &&
	    mbedtls_ssl_set_hostname(&ec->ssl, cfg->server_name) != 0)
		return NNG_ENOMEM;
	if (deadline_ms > 0 && (rv = conn_deadline_start(ec, deadline_ms)) != 0)
		return rv;
	if (idle_ms > 0 && (rv = conn_idle_start(ec)) != 0)
		return rv;
	return 0;
}

static void engine_conn_fini(nng_tls_engine_conn *ec)
{
	/* Waits for a running deadline callback; a poke it then starts is refused by nng. */
	if (ec->hs_aio != NULL) {
		nng_aio_stop(ec->hs_aio);
		nng_aio_free(ec->hs_aio);
		ec->hs_aio = NULL;
	}
	if (ec->idle_aio != NULL) {
		nng_aio_stop(ec->idle_aio);
		nng_aio_free(ec->idle_aio);
		ec->idle_aio = NULL;
	}
	conn_addr_give(ec);
	if (ec->guard != NULL)
		guard_give(ec->guard, ec);
	if (ec->ssl_ready)
		mbedtls_ssl_free(&ec->ssl);
	ec->ssl_ready = false;
}

/*
 * nng closes the TCP stream right after this (tls_close, tls_common.c:736-746).
 * close_notify only on a sound, established connection; from now on every
 * call answers NNG_ECLOSED: nng 1.5.2 never marks its side closed
 * (tls_common.c:695, 720), and a recv that reached mbedTLS now would wait on
 * a TCP aio nng has stopped, for ever.
 */
static void engine_conn_close(nng_tls_engine_conn *ec)
{
	if (ec->fatal == 0 && ec->ssl_ready && ec->hs_over)
		(void)mbedtls_ssl_close_notify(&ec->ssl);
	(void)conn_fail(ec, NNG_ECLOSED);
}

static int engine_conn_handshake(nng_tls_engine_conn *ec)
{
	return conn_drive(ec, OP_HANDSHAKE, NULL, NULL, NULL);
}

/*
 * nng calls recv and send only for the aio at the head of its queue
 * (tls_do_recv, tls_do_send), and again for it only when a TCP operation
 * completes; NNG_EAGAIN leaves the aio queued.  So after NNG_EAGAIN the
 * server waits on its peer, and after anything else it does not (for this
 * direction) until it queues the next operation.  The idle limit reads that.
 */
static int engine_conn_recv(nng_tls_engine_conn *ec, uint8_t *buf, size_t *szp)
{
	int rv;

	if (buf == &ec->poke_byte)
		return conn_poke_result(ec);
	rv = conn_drive(ec, OP_RECV, buf, NULL, szp);
	atomic_store(&ec->rx_wait, rv == NNG_EAGAIN);
	return rv;
}

static int engine_conn_send(nng_tls_engine_conn *ec, const uint8_t *buf, size_t *szp)
{
	int rv;

	if (buf == &ec->poke_byte)
		return conn_poke_result(ec);
	rv = conn_drive(ec, OP_SEND, NULL, buf, szp);
	atomic_store(&ec->tx_wait, rv == NNG_EAGAIN);
	/* The idle clock restarts with each piece of an answer the peer takes. */
	if (rv == 0 && ec->idle_aio != NULL)
		atomic_store(&ec->idle_since, mono_ms());
	return rv;
}

static bool engine_conn_verified(nng_tls_engine_conn *ec)
{
	memcpy(tls_peer_cn_slot, ec->peer_cn, sizeof(tls_peer_cn_slot));
	memcpy(tls_peer_serial_slot, ec->peer_serial, sizeof(tls_peer_serial_slot));
	return ec->verified;
}

/* ---- configuration operations ---- */

static int engine_config_init(nng_tls_engine_config *cfg, nng_tls_mode mode)
{
	int endpoint = mode == NNG_TLS_MODE_SERVER ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT;

	cfg->server = mode == NNG_TLS_MODE_SERVER;
	mbedtls_ssl_config_init(&cfg->conf);
	mbedtls_x509_crt_init(&cfg->ca);
	mbedtls_x509_crl_init(&cfg->crl);
	mbedtls_x509_crt_init(&cfg->own_cert);
	mbedtls_pk_init(&cfg->own_key);
	if (mbedtls_ssl_config_defaults(&cfg->conf, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
					MBEDTLS_SSL_PRESET_DEFAULT) != 0)
		return NNG_ENOMEM;
	/* Same defaults as nng: servers don't ask for certificates unless told, clients verify. */
	cfg->auth_mode =
	    mode == NNG_TLS_MODE_SERVER ? MBEDTLS_SSL_VERIFY_NONE : MBEDTLS_SSL_VERIFY_REQUIRED;
	mbedtls_ssl_conf_authmode(&cfg->conf, cfg->auth_mode);
	mbedtls_ssl_conf_rng(&cfg->conf, mbedtls_ctr_drbg_random, &tls_drbg);
	mbedtls_ssl_conf_min_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
				     MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_ciphersuites(&cfg->conf, tls_ciphersuites);
	mbedtls_ssl_conf_verify(&cfg->conf, verify_cb, cfg);
	return 0;
}

static void engine_config_fini(nng_tls_engine_config *cfg)
{
	guard_free(atomic_load(&cfg->guard));
	mbedtls_ssl_config_free(&cfg->conf);
	mbedtls_x509_crt_free(&cfg->ca);
	mbedtls_x509_crl_free(&cfg->crl);
	mbedtls_x509_crt_free(&cfg->own_cert);
	mbedtls_pk_free(&cfg->own_key);
}

static int engine_config_server(nng_tls_engine_config *cfg, const char *name)
{
	size_t len = strlen(name);
	unsigned char ip[16];

	if (len >= sizeof(cfg->server_name))
		return NNG_EINVAL;
	memcpy(cfg->server_name, name, len + 1);
	cfg->server_is_ip = false;
	if (inet_pton(AF_INET, name, ip) == 1) {
		cfg->server_is_ip = true;
		cfg->server_ip_len = 4;
	} else if (inet_pton(AF_INET6, name, ip) == 1) {
		cfg->server_is_ip = true;
		cfg->server_ip_len = 16;
	}
	if (cfg->server_is_ip)
		memcpy(cfg->server_ip, ip, cfg->server_ip_len);
	return 0;
}

static int engine_config_auth(nng_tls_engine_config *cfg, nng_tls_auth_mode mode)
{
	switch (mode) {
	case NNG_TLS_AUTH_MODE_NONE:
		cfg->auth_mode = MBEDTLS_SSL_VERIFY_NONE;
		break;
	case NNG_TLS_AUTH_MODE_OPTIONAL:
		cfg->auth_mode = MBEDTLS_SSL_VERIFY_OPTIONAL;
		break;
	case NNG_TLS_AUTH_MODE_REQUIRED:
		cfg->auth_mode = MBEDTLS_SSL_VERIFY_REQUIRED;
		break;
	default:
		return NNG_EINVAL;
	}
	mbedtls_ssl_conf_authmode(&cfg->conf, cfg->auth_mode);
	return 0;
}

static int engine_config_ca_chain(nng_tls_engine_config *cfg, const char *certs, const char *crl)
{
	if (mbedtls_x509_crt_parse(&cfg->ca, (const unsigned char *)certs, strlen(certs) + 1) != 0)
		return NNG_EINVAL;
	if (crl != NULL &&
	    mbedtls_x509_crl_parse(&cfg->crl, (const unsigned char *)crl, strlen(crl) + 1) != 0)
		return NNG_EINVAL;
	mbedtls_ssl_conf_ca_chain(&cfg->conf, &cfg->ca, crl != NULL ? &cfg->crl : NULL);
	return 0;
}

static int engine_config_own_cert(nng_tls_engine_config *cfg, const char *cert, const char *key,
				  const char *pass)
{
	size_t plen = pass != NULL ? strlen(pass) : 0;

	/* One identity per configuration: a second call would leave the first half-replaced. */
	if (cfg->own_cert.raw.p != NULL)
		return NNG_EBUSY;
	if (mbedtls_x509_crt_parse(&cfg->own_cert, (const unsigned char *)cert, strlen(cert) + 1) !=
	    0)
		return NNG_EINVAL;
	if (mbedtls_pk_parse_key(&cfg->own_key, (const unsigned char *)key, strlen(key) + 1,
				 (const unsigned char *)pass, plen) != 0)
		return NNG_EINVAL;
	if (mbedtls_pk_check_pair(&cfg->own_cert.pk, &cfg->own_key) != 0)
		return NNG_ECRYPTO;
	if (mbedtls_ssl_conf_own_cert(&cfg->conf, &cfg->own_cert, &cfg->own_key) != 0)
		return NNG_ENOMEM;
	return 0;
}

static int engine_config_version(nng_tls_engine_config *cfg, nng_tls_version min,
				 nng_tls_version max)
{
	if (tls_cfg_probe) {
		tls_cfg_probe_slot = cfg; /* config_engine() asks which configuration this is */
		return 0;
	}
	/* mbedTLS 2.28 speaks TLS 1.2 at most, and we refuse anything older. */
	if (min > NNG_TLS_1_2 || max < NNG_TLS_1_2)
		return NNG_ENOTSUP;
	return 0;
}

static nng_tls_engine_config_ops engine_config_ops = {
    .size = sizeof(nng_tls_engine_config),
    .init = engine_config_init,
    .fini = engine_config_fini,
    .server = engine_config_server,
    .auth = engine_config_auth,
    .ca_chain = engine_config_ca_chain,
    .own_cert = engine_config_own_cert,
    .version = engine_config_version,
};

static nng_tls_engine_conn_ops engine_conn_ops = {
    .size = sizeof(nng_tls_engine_conn),
    .init = engine_conn_init,
    .fini = engine_conn_fini,
    .close = engine_conn_close,
    .handshake = engine_conn_handshake,
    .recv = engine_conn_recv,
    .send = engine_conn_send,
    .verified = engine_conn_verified,
};

static const nng_tls_engine vigil_engine = {
    .version = NNG_TLS_ENGINE_VERSION,
    .config_ops = &engine_config_ops,
    .conn_ops = &engine_conn_ops,
    .name = "vigil-mbedtls",
    .description = "Vigil engine on mbedTLS (peer CN, pinned ECDHE+AEAD suites)",
    .fips_mode = false,
};

/* ---- public helpers ---- */

static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static bool installed;

int tls_engine_install(vigil_err *err)
{
	static const char pers[] = "vigil-tls";
	nng_tls_config *probe;
	int rv = 0;

	pthread_mutex_lock(&install_lock);
	if (installed)
		goto out;
	/* The engine leans on nng 1.5 internals (tls.h: tls_limits); the soname does not say. */
	if (strncmp(nng_version(), "1.5.", 4) != 0) {
		rv = verr_set(err, -ENOTSUP,
			      "nng %s is loaded, but Vigil's TLS engine is written for nng 1.5",
			      nng_version());
		goto out;
	}
#ifndef VIGIL_NNG_UNPATCHED_OK
	/*
	 * Only a libnng built by deploy/nng/build-nng.sh carries the fix for
	 * nng 1.5.2's TLS transport (a peer closing mid-message wedged nng's
	 * reaper: nng_close hung, no pipe was freed again); its patch exports
	 * this marker.  meson checked it at build time; this catches another
	 * libnng found at run time (LD_LIBRARY_PATH, a copied binary).
	 */
	if (dlsym(RTLD_DEFAULT, "nng_vigil_tlstran_closed_fix") == NULL) {
		Dl_info dl;
		const char *lib = dladdr((void *)nng_version, &dl) != 0 && dl.dli_fname != NULL
				      ? dl.dli_fname
				      : "libnng";

		rv = verr_set(err, -ENOTSUP,
			      "%s lacks Vigil's fix for nng's TLS transport "
			      "(deploy/nng/0001-tls-transport-closed-pipe.patch); "
			      "use the one deploy/nng/build-nng.sh builds",
			      lib);
		goto out;
	}
#endif
	mbedtls_entropy_init(&tls_entropy);
	mbedtls_ctr_drbg_init(&tls_drbg);
	if (mbedtls_ctr_drbg_seed(&tls_drbg, mbedtls_entropy_func, &tls_entropy,
				  (const unsigned char *)pers, sizeof(pers) - 1) != 0 ||
	    mbedtls_ctr_drbg_random(&tls_drbg, (unsigned char *)&addr_seed, sizeof(addr_seed)) !=
		0) {
		rv = verr_set(err, -EIO, "cannot seed the TLS random generator");
		goto out;
	}
	/*
	 * nng registers its built-in engine during its lazy initialization; make
	 * that happen first (allocating a config does), then replace it.
	 */
	if (nng_tls_config_alloc(&probe, NNG_TLS_MODE_CLIENT) == 0)
		nng_tls_config_free(probe);
	if (nng_tls_engine_register(&vigil_engine) != 0 ||
	    strcmp(nng_tls_engine_name(), vigil_engine.name) != 0) {
		rv = verr_set(err, -ENOTSUP,
			      "nng refused Vigil's TLS engine (nng too old or too new?)");
		goto out;
	}
	installed = true;
out:
	pthread_mutex_unlock(&install_lock);
	return rv;
}

const char *tls_engine_name(void)
{
	return nng_tls_engine_name();
}

int tls_limits_set(const struct tls_limits *lim, vigil_err *err)
{
	if (lim->handshake_ms > TLS_HANDSHAKE_MS_MAX)
		return verr_set(err, -EINVAL,
				"TLS handshake deadline %u ms is over the limit (%u ms)",
				lim->handshake_ms, (unsigned)TLS_HANDSHAKE_MS_MAX);
	atomic_store(&limit_handshake_ms, lim->handshake_ms);
	atomic_store(&limit_per_addr, lim->handshakes_per_addr);
	return 0;
}

void tls_limits_get(struct tls_limits *ret)
{
	ret->handshake_ms = atomic_load(&limit_handshake_ms);
	ret->handshakes_per_addr = atomic_load(&limit_per_addr);
}

void tls_stats_get(struct tls_stats *ret)
{
	pthread_mutex_lock(&addr_lock);
	ret->handshaking = addr_handshaking;
	ret->refused_addr_cap = addr_refused_cap;
	ret->refused_addrs_full = addr_refused_full;
	pthread_mutex_unlock(&addr_lock);
	ret->handshake_timeouts = atomic_load(&stat_timeouts);
}

/* Our part of cfg (see tls_cfg_probe), or NULL when cfg is not of this engine. */
static struct nng_tls_engine_config *config_engine(nng_tls_config *cfg)
{
	struct nng_tls_engine_config *ours;

	tls_cfg_probe = true;
	tls_cfg_probe_slot = NULL;
	(void)nng_tls_config_version(cfg, NNG_TLS_1_2, NNG_TLS_1_2);
	ours = tls_cfg_probe_slot;
	tls_cfg_probe = false;
	tls_cfg_probe_slot = NULL;
	return ours;
}

int tls_conn_limits_set(nng_tls_config *cfg, const struct tls_conn_limits *lim, vigil_err *err)
{
	struct nng_tls_engine_config *ours = config_engine(cfg);
	struct tls_guard *g, *none = NULL;

	if (ours == NULL)
		return verr_set(err, -ENOTSUP,
				"connection limits need Vigil's TLS engine (tls_engine_install)");
	if (!ours->server)
		return verr_set(err, -EINVAL, "connection limits are for server configurations");
	if (lim->conns_max < 1 || lim->conns_max > TLS_CONNS_MAX)
		return verr_set(err, -EINVAL, "connection cap %u is not from 1 to %u",
				lim->conns_max, (unsigned)TLS_CONNS_MAX);
	if (lim->conns_per_addr > lim->conns_max)
		return verr_set(err, -EINVAL,
				"per-address connection cap %u is over the total cap %u",
				lim->conns_per_addr, lim->conns_max);
	if (lim->idle_ms > TLS_HANDSHAKE_MS_MAX)
		return verr_set(err, -EINVAL, "idle limit %u ms is over the limit (%u ms)",
				lim->idle_ms, (unsigned)TLS_HANDSHAKE_MS_MAX);
	if ((g = guard_new(lim)) == NULL)
		return verr_set(err, -ENOMEM, "out of memory for connection limits");
	if (!atomic_compare_exchange_strong(&ours->guard, &none, g)) {
		guard_free(g);
		return verr_set(err, -EBUSY,
				"this TLS configuration has connection limits already");
	}
	return 0;
}

int tls_conn_stats_get(nng_tls_config *cfg, struct tls_conn_stats *ret)
{
	struct nng_tls_engine_config *ours = config_engine(cfg);
	struct tls_guard *g;

	if (ours == NULL)
		return -ENOTSUP;
	if ((g = atomic_load(&ours->guard)) == NULL)
		return -ENOENT;
	pthread_mutex_lock(&g->lock);
	*ret = g->stats;
	pthread_mutex_unlock(&g->lock);
	return 0;
}

int tls_config_new(nng_tls_mode mode, nng_tls_auth_mode auth, const struct tls_files *files,
		   const char *server_name, nng_tls_config **ret_cfg, vigil_err *err)
{
	nng_tls_config *cfg = NULL;
	char *ca = NULL, *cert = NULL, *key = NULL;
	size_t key_len = 0;
	int rv;

	if (files->ca != NULL && (rv = fs_read_file(files->ca, TLS_PEM_MAX, &ca, NULL, err)) < 0)
		goto out;
	if (files->cert != NULL &&
	    (rv = fs_read_file(files->cert, TLS_PEM_MAX, &cert, NULL, err)) < 0)
		goto out;
	if (files->key != NULL &&
	    (rv = fs_read_file(files->key, TLS_PEM_MAX, &key, &key_len, err)) < 0)
		goto out;
	if ((files->cert == NULL) != (files->key == NULL)) {
		rv =
		    verr_set(err, -EINVAL, "a certificate needs its key and a key its certificate");
		goto out;
	}
	if (auth != NNG_TLS_AUTH_MODE_NONE && ca == NULL) {
		rv = verr_set(err, -EINVAL, "verifying peers needs a CA file");
		goto out;
	}
	if ((rv = nng_tls_config_alloc(&cfg, mode)) != 0) {
		rv = verr_set(err, -ENOMEM, "cannot allocate a TLS configuration: %s",
			      nng_strerror(rv));
		goto out;
	}
	if ((rv = nng_tls_config_auth_mode(cfg, auth)) != 0) {
		rv = verr_set(err, -EINVAL, "bad TLS auth mode");
		goto out;
	}
	if (ca != NULL && nng_tls_config_ca_chain(cfg, ca, NULL) != 0) {
		rv = verr_set(err, -EINVAL, "%s holds no parsable PEM certificate", files->ca);
		goto out;
	}
	if (cert != NULL) {
		rv = nng_tls_config_own_cert(cfg, cert, key, NULL);
		if (rv == NNG_ECRYPTO) {
			rv = verr_set(err, -EINVAL, "key %s does not match certificate %s",
				      files->key, files->cert);
			goto out;
		}
		if (rv != 0) {
			rv = verr_set(err, -EINVAL,
				      "cannot use certificate %s with key %s: not PEM, or the key "
				      "is encrypted",
				      files->cert, files->key);
			goto out;
		}
	}
	if (server_name != NULL && nng_tls_config_server_name(cfg, server_name) != 0) {
		rv = verr_set(err, -EINVAL, "bad TLS server name '%s'", server_name);
		goto out;
	}
	*ret_cfg = cfg;
	cfg = NULL;
	rv = 0;
out:
	if (cfg != NULL)
		nng_tls_config_free(cfg);
	if (key != NULL)
		mbedtls_platform_zeroize(key, key_len);
	free(ca);
	free(cert);
	free(key);
	return rv;
}

int tls_pipe_peer(nng_pipe p, struct tls_peer *ret)
{
	bool verified = false;
	int rv;

	tls_peer_cn_slot[0] = '\0';
	tls_peer_serial_slot[0] = '\0';
	rv = nng_pipe_get_bool(p, NNG_OPT_TLS_VERIFIED, &verified);
	if (rv != 0)
		return rv == NNG_ENOENT || rv == NNG_ECLOSED ? -ENOTCONN : -ENOTSUP;
	if (!verified || tls_peer_cn_slot[0] == '\0')
		return -EACCES;
	memcpy(ret->cn, tls_peer_cn_slot, sizeof(ret->cn));
	memcpy(ret->serial, tls_peer_serial_slot, sizeof(ret->serial));
	return 0;
}

int tls_pipe_peer_cn(nng_pipe p, char *buf, size_t len)
{
	struct tls_peer peer;
	int rc = tls_pipe_peer(p, &peer);

	if (rc < 0)
		return rc;
	if (strlen(peer.cn) >= len)
		return -ENAMETOOLONG;
	strcpy(buf, peer.cn);
	return 0;
}

int tls_config_set_peer_check(nng_tls_config *cfg, tls_peer_refuse_fn fn, void *arg, vigil_err *err)
{
	struct nng_tls_engine_config *ours = config_engine(cfg);

	if (ours == NULL)
		return verr_set(err, -ENOTSUP,
				"a peer check needs Vigil's TLS engine (tls_engine_install)");
	if (!ours->server)
		return verr_set(err, -EINVAL, "a peer check is for server configurations");
	atomic_store(&ours->refuse_arg, arg);
	atomic_store(&ours->refuse, fn);
	return 0;
}
