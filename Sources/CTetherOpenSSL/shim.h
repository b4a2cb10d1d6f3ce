#ifndef TETHER_OPENSSL_SHIM_H
#define TETHER_OPENSSL_SHIM_H
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/rand.h>
#include <pthread.h>
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

// Bytes a memory BIO holds room for, read or not: it keeps its largest size until freed.
static inline size_t tether_bio_capacity(BIO *bio) {
    BUF_MEM *memory = NULL;
    BIO_get_mem_ptr(bio, &memory);
    return memory == NULL ? 0 : memory->max;
}

static inline int tether_chain_count(STACK_OF(X509) *chain) { return chain == NULL ? 0 : sk_X509_num(chain); }

static inline X509 *tether_chain_at(STACK_OF(X509) *chain, int index) { return sk_X509_value(chain, index); }


// Resumption, server side: TLS 1.3 tickets sealed with keys the hub holds in memory. A context
// has the current key and, after a rotation, the previous one: tickets under the previous key
// still resume, older ones make a full handshake. Every handshake gets one new ticket.
typedef struct {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
} tether_ticket_key;

typedef struct {
    tether_ticket_key keys[2];
    int count;
} tether_ticket_keys;

static int tether_ticket_callback(SSL *ssl, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *cipher, EVP_MAC_CTX *mac, int encrypt) {
    tether_ticket_keys *ring = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), 0);
    if (ring == NULL || ring->count == 0) {
        return 0;
    }
    OSSL_PARAM params[3];
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (encrypt) {
        tether_ticket_key *key = &ring->keys[0];
        if (RAND_bytes(iv, 16) <= 0) {
            return -1;
        }
        memcpy(key_name, key->name, 16);
        params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key->hmac, sizeof(key->hmac));
        if (EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, key->aes, iv) != 1 || EVP_MAC_CTX_set_params(mac, params) != 1) {
            return -1;
        }
        return 1;
    }
    for (int index = 0; index < ring->count; index++) {
        tether_ticket_key *key = &ring->keys[index];
        if (memcmp(key_name, key->name, 16) != 0) {
            continue;
        }
        params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key->hmac, sizeof(key->hmac));
        if (EVP_MAC_CTX_set_params(mac, params) != 1 || EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), NULL, key->aes, iv) != 1) {
            return -1;
        }
        // 2: resume, and send a new ticket. A TLS 1.3 client uses each ticket once, so a session
        // resumed without one would make the next reconnect a full handshake.
        return 2;
    }
    return 0;
}

static inline int tether_ssl_ctx_use_ticket_keys(SSL_CTX *ctx, tether_ticket_keys *ring) {
    if (SSL_CTX_set_ex_data(ctx, 0, ring) != 1) {
        return 0;
    }
    return (int)SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tether_ticket_callback);
}

// Resumption, client side: the latest ticket the hub sent, kept in memory by the context (so a
// renewed certificate, which makes a new context, never resumes an old session).
typedef struct {
    pthread_mutex_t lock;
    SSL_SESSION *session;
} tether_session_slot;

static int tether_keep_session(SSL *ssl, SSL_SESSION *session) {
    tether_session_slot *slot = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), 0);
    if (slot == NULL) {
        return 0;
    }
    pthread_mutex_lock(&slot->lock);
    SSL_SESSION *previous = slot->session;
    slot->session = session;
    pthread_mutex_unlock(&slot->lock);
    if (previous != NULL) {
        SSL_SESSION_free(previous);
    }
    return 1;
}

static inline int tether_ssl_ctx_keep_sessions(SSL_CTX *ctx, tether_session_slot *slot) {
    pthread_mutex_init(&slot->lock, NULL);
    slot->session = NULL;
    if (SSL_CTX_set_ex_data(ctx, 0, slot) != 1) {
        return 0;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, tether_keep_session);
    return 1;
}

// Offers the kept session, if any, to a new connection.
static inline void tether_ssl_offer_kept_session(SSL *ssl) {
    tether_session_slot *slot = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), 0);
    if (slot == NULL) {
        return;
    }
    pthread_mutex_lock(&slot->lock);
    SSL_SESSION *session = slot->session;
    if (session != NULL) {
        SSL_set_session(ssl, session);
    }
    pthread_mutex_unlock(&slot->lock);
}

static inline void tether_session_slot_release(tether_session_slot *slot) {
    if (slot->session != NULL) {
        SSL_SESSION_free(slot->session);
    }
    slot->session = NULL;
    pthread_mutex_destroy(&slot->lock);
}

static inline void tether_ssl_ctx_disable_session_cache(SSL_CTX *ctx) { SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); }

static inline long tether_ssl_ctx_set_num_tickets(SSL_CTX *ctx, size_t count) { return SSL_CTX_set_num_tickets(ctx, count); }

#endif
