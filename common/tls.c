/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Vigil's nng TLS engine on mbedTLS 2.28, and the helpers that build nng TLS
 * configurations from files.  See tls.h for why the engine exists.
 *
 * nng allocates (zeroed) and frees our config and connection structs; it
 * serializes calls on one connection under that connection's lock.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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

#define TLS_CN_MAX   64
#define TLS_NAME_MAX 256

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

struct nng_tls_engine_config {
	mbedtls_ssl_config conf;
	mbedtls_x509_crt ca;
	mbedtls_x509_crl crl;
	mbedtls_x509_crt own_cert;
	mbedtls_pk_context own_key;
	int auth_mode;
	bool server_is_ip;
	unsigned char server_ip[16];
	size_t server_ip_len;
	char server_name[TLS_NAME_MAX];
};

struct nng_tls_engine_conn {
	void *nng_conn; /* nng's side, for nng_tls_engine_send/recv */
	struct nng_tls_engine_config *cfg;
	mbedtls_ssl_context ssl;
	bool ssl_ready;
	bool verified;
	char peer_cn[TLS_CN_MAX + 1];
};

/* ---- transport callbacks ---- */

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
	size_t sz = len;
	int rv = nng_tls_engine_send(ctx, buf, &sz);

	if (rv == 0)
		return (int)sz;
	if (rv == NNG_EAGAIN)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	return MBEDTLS_ERR_NET_SEND_FAILED;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
	size_t sz = len;
	int rv = nng_tls_engine_recv(ctx, buf, &sz);

	if (rv == 0)
		return (int)sz;
	if (rv == NNG_EAGAIN)
		return MBEDTLS_ERR_SSL_WANT_READ;
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

/*
 * mbedTLS calls this for each certificate of the peer's chain.  For a server
 * named by IP address we check the leaf's IP SANs ourselves (hostname
 * checking was left off for it) and fail the handshake on a mismatch.
 */
static int verify_cb(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
	struct nng_tls_engine_config *cfg = arg;

	if (depth == 0 && cfg->server_is_ip &&
	    !crt_has_ip_san(crt, cfg->server_ip, cfg->server_ip_len))
		*flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
	return 0;
}

/* ---- connection operations ---- */

static int engine_conn_init(nng_tls_engine_conn *ec, void *nng_conn, nng_tls_engine_config *cfg)
{
	int rv;

	ec->nng_conn = nng_conn;
	ec->cfg = cfg;
	mbedtls_ssl_init(&ec->ssl);
	if ((rv = mbedtls_ssl_setup(&ec->ssl, &cfg->conf)) != 0) {
		mbedtls_ssl_free(&ec->ssl);
		return rv == MBEDTLS_ERR_SSL_ALLOC_FAILED ? NNG_ENOMEM : NNG_EINTERNAL;
	}
	ec->ssl_ready = true;
	mbedtls_ssl_set_bio(&ec->ssl, nng_conn, bio_send, bio_recv, NULL);
	if (cfg->server_name[0] != '\0' && !cfg->server_is_ip &&
	    mbedtls_ssl_set_hostname(&ec->ssl, cfg->server_name) != 0)
		return NNG_ENOMEM;
	return 0;
}

static void engine_conn_fini(nng_tls_engine_conn *ec)
{
	if (ec->ssl_ready)
		mbedtls_ssl_free(&ec->ssl);
	ec->ssl_ready = false;
}

static void engine_conn_close(nng_tls_engine_conn *ec)
{
	if (ec->ssl_ready)
		(void)mbedtls_ssl_close_notify(&ec->ssl);
}

static int engine_conn_handshake(nng_tls_engine_conn *ec)
{
	const mbedtls_x509_crt *peer;
	int rv = mbedtls_ssl_handshake(&ec->ssl);

	switch (rv) {
	case 0:
		break;
	case MBEDTLS_ERR_SSL_WANT_READ:
	case MBEDTLS_ERR_SSL_WANT_WRITE:
		return NNG_EAGAIN;
	case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
	case MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE:
	case MBEDTLS_ERR_SSL_PEER_VERIFY_FAILED:
		return NNG_EPEERAUTH;
	default:
		return NNG_ECRYPTO;
	}
	peer = mbedtls_ssl_get_peer_cert(&ec->ssl);
	ec->verified = ec->cfg->auth_mode != MBEDTLS_SSL_VERIFY_NONE && peer != NULL &&
		       mbedtls_ssl_get_verify_result(&ec->ssl) == 0 &&
		       subject_cn(peer, ec->peer_cn);
	if (!ec->verified)
		ec->peer_cn[0] = '\0';
	return 0;
}

static int engine_conn_recv(nng_tls_engine_conn *ec, uint8_t *buf, size_t *szp)
{
	int rv = mbedtls_ssl_read(&ec->ssl, buf, *szp);

	if (rv > 0) {
		*szp = (size_t)rv;
		return 0;
	}
	switch (rv) {
	case MBEDTLS_ERR_SSL_WANT_READ:
	case MBEDTLS_ERR_SSL_WANT_WRITE:
		return NNG_EAGAIN;
	case 0:
	case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
		return NNG_ECLOSED;
	default:
		return NNG_ECRYPTO;
	}
}

static int engine_conn_send(nng_tls_engine_conn *ec, const uint8_t *buf, size_t *szp)
{
	int rv = mbedtls_ssl_write(&ec->ssl, buf, *szp);

	if (rv > 0) {
		*szp = (size_t)rv;
		return 0;
	}
	switch (rv) {
	case MBEDTLS_ERR_SSL_WANT_READ:
	case MBEDTLS_ERR_SSL_WANT_WRITE:
		return NNG_EAGAIN;
	default:
		return NNG_ECRYPTO;
	}
}

static bool engine_conn_verified(nng_tls_engine_conn *ec)
{
	memcpy(tls_peer_cn_slot, ec->peer_cn, sizeof(tls_peer_cn_slot));
	return ec->verified;
}

/* ---- configuration operations ---- */

static int engine_config_init(nng_tls_engine_config *cfg, nng_tls_mode mode)
{
	int endpoint = mode == NNG_TLS_MODE_SERVER ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT;

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
	/* mbedTLS 2.28 speaks TLS 1.2 at most, and we refuse anything older. */
	if (min > NNG_TLS_1_2 || max < NNG_TLS_1_2)
		return NNG_ENOTSUP;
	(void)cfg;
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
	mbedtls_entropy_init(&tls_entropy);
	mbedtls_ctr_drbg_init(&tls_drbg);
	if (mbedtls_ctr_drbg_seed(&tls_drbg, mbedtls_entropy_func, &tls_entropy,
				  (const unsigned char *)pers, sizeof(pers) - 1) != 0) {
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

int tls_pipe_peer_cn(nng_pipe p, char *buf, size_t len)
{
	bool verified = false;
	int rv;

	tls_peer_cn_slot[0] = '\0';
	rv = nng_pipe_get_bool(p, NNG_OPT_TLS_VERIFIED, &verified);
	if (rv != 0)
		return rv == NNG_ENOENT || rv == NNG_ECLOSED ? -ENOTCONN : -ENOTSUP;
	if (!verified || tls_peer_cn_slot[0] == '\0')
		return -EACCES;
	if (strlen(tls_peer_cn_slot) >= len)
		return -ENAMETOOLONG;
	strcpy(buf, tls_peer_cn_slot);
	return 0;
}
