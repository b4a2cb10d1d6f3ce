#ifndef TETHER_OPENSSL_SHIM_H
#define TETHER_OPENSSL_SHIM_H
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <string.h>

// The system OpenSSL (libssl-dev), for the agent port's TLS. Many of its calls are macros or
// take C callbacks, which Swift cannot express; these wrap them.

static inline int tether_ssl_ctx_set_tls13_only(SSL_CTX *ctx) {
    return SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) && SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
}

static inline long tether_ssl_ctx_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }

static inline int tether_ssl_ctx_add_chain_certificate(SSL_CTX *ctx, X509 *certificate) {
    return (int)SSL_CTX_add1_chain_cert(ctx, certificate);
}

// OpenSSL's chain verification decides the handshake (a refused chain gets its alert). The leaf
// it refused is kept in the SSL object's app data, so the handler can say why in the hub's
// own words; the handler frees it.
static int tether_verify_keep_refused(int ok, X509_STORE_CTX *store) {
    if (!ok) {
        SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
        X509 *leaf = X509_STORE_CTX_get0_cert(store);
        if (ssl != NULL && leaf != NULL && SSL_get_ex_data(ssl, 0) == NULL && X509_up_ref(leaf) == 1) {
            SSL_set_ex_data(ssl, 0, leaf);
        }
    }
    return ok;
}

static inline void tether_ssl_ctx_require_peer_certificate(SSL_CTX *ctx) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, tether_verify_keep_refused);
}

static inline X509 *tether_ssl_take_refused_leaf(SSL *ssl) {
    X509 *leaf = SSL_get_ex_data(ssl, 0);
    SSL_set_ex_data(ssl, 0, NULL);
    return leaf;
}

static inline int tether_ssl_set_ip_check(SSL *ssl, const char *address) {
    return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), address);
}

// ALPN on the server: the one protocol Tether speaks, or no ALPN at all, which the session
// then refuses with its own reason.
static int tether_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl;
    (void)arg;
    static const unsigned char tether[] = "\x08tether/1";
    unsigned char *selected = NULL;
    if (SSL_select_next_proto(&selected, outlen, tether, sizeof(tether) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_NOACK;
    }
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
}

static inline void tether_ssl_ctx_select_tether_alpn(SSL_CTX *ctx) { SSL_CTX_set_alpn_select_cb(ctx, tether_alpn_select, NULL); }

static inline int tether_ssl_set_server_name(SSL *ssl, const char *name) { return (int)SSL_set_tlsext_host_name(ssl, name); }

static inline size_t tether_bio_pending(BIO *bio) { return (size_t)BIO_ctrl_pending(bio); }

static inline int tether_chain_count(STACK_OF(X509) *chain) { return chain == NULL ? 0 : sk_X509_num(chain); }

static inline X509 *tether_chain_at(STACK_OF(X509) *chain, int index) { return sk_X509_value(chain, index); }

#endif
